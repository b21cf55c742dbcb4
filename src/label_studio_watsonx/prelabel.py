"""Pre-annotate a whole project from the command line.

Label Studio's "Retrieve predictions" sends every selected task in one request and
gives up on its timeout. ``prelabel`` instead reads the project through the API,
picks the tasks with no prediction for the current ``model_version``, asks the LLM
in chunks with bounded concurrency, and writes each chunk's predictions back in one
call. Answers are cached, and tasks that already hold a prediction of this version
are skipped, so a run stopped part-way resumes where it stopped, pays nothing twice
and never duplicates a prediction.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .labelstudio import LabelStudio
from .predictions import Predictor
from .progress import Progress

log = logging.getLogger(__name__)
CHUNK = 20


@dataclass
class PrelabelReport:
    """What one run did."""

    model_version: str = ""
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    cached: int = 0
    reasons: Counter = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    filtered: bool = False

    def summary(self) -> str:
        lines = [
            f"model version {self.model_version}",
            f"tasks {self.total}: {self.done} predicted, {self.skipped} skipped (already "
            f"predicted by this version), {self.failed} failed",
            f"tokens in {self.input_tokens}, out {self.output_tokens}; {self.cached} answers "
            f"from the cache; {self.seconds:.1f}s",
        ]
        for reason, count in self.reasons.most_common(10):
            lines.append(f"  failed x{count}: {reason}")
        if self.filtered and not self.total:
            lines.append("no task of the project matched --filter (task ids are global)")
        if self.interrupted:
            lines.append("interrupted: run the same command again to finish")
        return "\n".join(lines)


def prelabel(
    client: LabelStudio,
    predictor: Predictor,
    project_id: int,
    prompt: str | None = None,
    limit: int | None = None,
    task_ids: Iterable[int] | None = None,
    concurrency: int | None = None,
    dry_run: bool = False,
    show: int = 3,
    progress: bool = True,
) -> PrelabelReport:
    """Predict every task of the project that lacks this model version's prediction."""
    started = time.perf_counter()
    project = client.project(project_id)
    label_config = project["label_config"]
    plan = predictor.plan(label_config)
    version = predictor.model_version(project_id, default_prompt=prompt)
    report = PrelabelReport(model_version=version, filtered=bool(task_ids))
    wanted = set(task_ids) if task_ids else None

    todo = []
    for task in client.tasks(project_id):
        if wanted is not None and task.get("id") not in wanted:
            continue
        report.total += 1
        if any(p.get("model_version") == version for p in task.get("predictions") or []):
            report.skipped += 1
            continue
        if limit is None or len(todo) < limit:
            todo.append({"id": task["id"], "data": task.get("data") or {}})

    if dry_run:
        remembered = None if prompt else predictor.project_prompts.get(project_id)
        for task in todo[:show]:
            try:
                text = predictor.builder.build(plan, task, remembered, prompt).text
            except Exception as error:  # show why, as the real run would log it
                text = f"(no prompt: {error})"
            print(f"--- task {task['id']}\n{text}")
        print(f"{len(todo)} task(s) would be predicted with model version {version}")
        report.seconds = time.perf_counter() - started
        return report

    bar = Progress(f"project {project_id}", len(todo)) if progress else None
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            outcome = predictor.predict(
                chunk, label_config, project_id, default_prompt=prompt,
                concurrency=concurrency, timeout=3600,
            )  # fmt: skip
            predictions = []
            for task, result in zip(chunk, outcome.tasks, strict=True):
                report.input_tokens += sum(c.input_tokens for c in result.completions)
                report.output_tokens += sum(c.output_tokens for c in result.completions)
                report.cached += result.cached
                if result.prediction is None:
                    report.failed += 1
                    report.reasons[_general(result.reason)] += 1
                    continue
                predictions.append({"task": task["id"], **result.prediction})
            if predictions:
                client.request("POST", f"/api/projects/{int(project_id)}/import/predictions",
                               json=predictions)  # fmt: skip
                report.done += len(predictions)
            if bar:
                bar.advance(len(chunk))
    except KeyboardInterrupt:
        report.interrupted = True
    if bar:
        bar.finish()
    report.seconds = time.perf_counter() - started
    return report


def _general(reason: str | None) -> str:
    """A failure reason without its task id, so equal reasons count together."""
    text = reason or "no reason given"
    if text.startswith("task ") and ":" in text:
        text = text.split(":", 1)[1].strip()
    return text
