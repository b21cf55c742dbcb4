"""``prelabel`` against the real Label Studio, with the real local model."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.fixtures import REFERENCE_CONFIG

pytestmark = pytest.mark.e2e
TASKS = 50


def make_project(ls_api, title: str) -> int:
    project_id = ls_api.post("/api/projects", json={"title": title, "label_config": REFERENCE_CONFIG}).json()["id"]
    ls_api.post(f"/api/projects/{project_id}/import",
                json=[{"text": f"Fact number {n}: the number {n} is {'even' if n % 2 == 0 else 'odd'}."}
                      for n in range(TASKS)])  # fmt: skip
    return project_id


def predictions_by_task(ls_api, project_id: int) -> Counter:
    predictions = ls_api.get("/api/predictions", params={"project": project_id}).json()
    return Counter((p["task"], p["model_version"]) for p in predictions)


def command(label_studio, tmp_path, project_id: int, *extra: str) -> tuple[list[str], dict]:
    server, token = label_studio
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LLM_PROVIDER": "local",
           "LOCAL_THREADS": "1", "MAX_NEW_TOKENS": "12",
           "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": token}  # fmt: skip
    return [sys.executable, "-m", "label_studio_watsonx", "prelabel", "--project",
            str(project_id), *extra], env  # fmt: skip


def test_prelabel_predicts_every_task_once_and_a_second_run_is_free(ls_api, label_studio, tmp_path):
    project_id = make_project(ls_api, "e2e prelabel")
    args, env = command(label_studio, tmp_path, project_id)

    dry = subprocess.run([*args, "--dry-run"], env=env, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert f"{TASKS} task(s) would be predicted" in dry.stdout, dry.stdout + dry.stderr
    assert "Answer the following question\n\nFact number 0" in dry.stdout
    assert not predictions_by_task(ls_api, project_id)

    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    assert f"tasks {TASKS}: {TASKS} predicted, 0 skipped" in first.stdout
    counts = predictions_by_task(ls_api, project_id)
    assert len(counts) == TASKS and set(counts.values()) == {1}
    version = re.search(r"model version (\S+)", first.stdout).group(1)
    assert {v for _, v in counts} == {version}

    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"tasks {TASKS}: 0 predicted, {TASKS} skipped" in second.stdout
    assert "tokens in 0, out 0" in second.stdout
    assert predictions_by_task(ls_api, project_id) == counts


def test_an_interrupted_run_resumes_without_duplicates(ls_api, label_studio, tmp_path):
    project_id = make_project(ls_api, "e2e prelabel interrupted")
    args, env = command(label_studio, tmp_path, project_id, "--prompt", "Say one word about: {text}")
    run = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not predictions_by_task(ls_api, project_id):
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=120)
    written = predictions_by_task(ls_api, project_id)
    assert run.returncode == 130 and "interrupted" in out
    assert 0 < len(written) < TASKS, "the interruption should land part-way"

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert f"{TASKS - len(written)} predicted, {len(written)} skipped" in again.stdout
    counts = predictions_by_task(ls_api, project_id)
    assert len(counts) == TASKS and set(counts.values()) == {1}
