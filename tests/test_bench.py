"""The collect benchmark runs end to end: a tiny run, so that it cannot rot unnoticed.

Its figures mean nothing at this size (docs/benchmarks.md has real runs); what is checked
is that every server starts, answers every request 200, stores what it acknowledged, and
that the report prints the ratio the issue asks for.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_collect_benchmark_runs_and_prints_its_ratio() -> None:
    command = [sys.executable, str(ROOT / "bench" / "collect_bench.py")]
    options = ["--rounds", "1", "--requests", "300", "--warmup", "100", "--concurrency", "8"]
    run = subprocess.run(
        [*command, *options], capture_output=True, text=True, timeout=240, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = run.stdout
    for server in ("bare", "edge", "edge+dispatch"):
        line = next(x for x in report.splitlines() if x.strip().startswith(f"{server}:"))
        assert "non-200: 0" in line, line
    assert re.search(r"^ratio edge/bare: \d\.\d\d  \(target >= 0\.5\)", report, re.M), report
