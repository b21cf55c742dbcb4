"""Run every benchmark in this folder and write ``benchmarks/RESULTS.md``.

Each ``bench_*.py`` module has ``TITLE``, ``FIGURES`` (key, label, unit) and
``measure() -> dict[str, float]``. Each is run ``--repeats`` times; the table shows
the median of every figure (ratios included, each computed within one run, so a
noisy machine moves both sides together).

    .venv/bin/python benchmarks/run.py [--repeats 3] [--only sync_ingest]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=HERE, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="module names without bench_")
    args = parser.parse_args()

    names = sorted(path.stem for path in HERE.glob("bench_*.py"))
    if args.only:
        names = [name for name in names if name.removeprefix("bench_") in args.only]
    sections = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        runs = []
        for repeat in range(args.repeats):
            print(f"{name}: run {repeat + 1}/{args.repeats}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            runs.append(module.measure())
            print(f"{name}: {time.perf_counter() - started:.0f}s {runs[-1]}", file=sys.stderr)
        rows = [
            f"| {label} | {statistics.median(run[key] for run in runs):,.{digits}f} {unit} |"
            for key, label, unit, digits in module.FIGURES
        ]
        sections.append(f"### {module.TITLE}\n\n{module.__doc__.strip()}\n\n"
                        "| figure | median |\n|---|---|\n" + "\n".join(rows))  # fmt: skip

    header = (
        "# Benchmark results\n\n"
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"Commit: {commit()}. Each figure is the median of {args.repeats} runs.\n"
        "Written by `make bench`.\n"
    )
    output = HERE / "RESULTS.md"
    existing = output.read_text() if output.exists() and args.only else ""
    text = header + "\n" + "\n\n".join(sections) + "\n"
    if existing:  # keep the sections not re-run
        kept = [part for part in existing.split("\n### ")[1:]
                if not any(part.startswith(s.split("\n", 1)[0][4:]) for s in sections)]  # fmt: skip
        text = header + "\n" + "\n\n".join(sections + ["### " + part.strip() for part in kept]) + "\n"
    output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
