"""Wall-clock timings of the mpforge CLI (median of N runs), with the bare Python start
measured in the same run as the baseline.

    python bench/cli_timings.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic import REPO, write_spec


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    mpforge = [sys.executable, "-m", "builder"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        big = write_spec(200, tmp_path / "spec200")
        cases = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "mpforge --help": [*mpforge, "--help"],
            "mpforge --version": [*mpforge, "--version"],
        }
        for name in ("harbour-coffee", "linli-fresh"):
            # A fresh output folder each run: a full build, not a no-op rebuild.
            cases[f"build {name} (full)"] = ["sh", "-c", f"rm -rf {tmp}/out-{name} && "
                                             f"{sys.executable} -m builder build {REPO}/sample_projects/{name} -o {tmp}/out-{name}"]
        cases["build 200-page spec (full)"] = ["sh", "-c", f"rm -rf {tmp}/out200 && "
                                               f"{sys.executable} -m builder build {big} -o {tmp}/out200"]
        cases["build 200-page spec (no-op rebuild)"] = [*mpforge, "build", str(big), "-o", f"{tmp}/out200"]
        results = {name: median_seconds(cmd, args.runs) for name, cmd in cases.items()}
    baseline = results["python -c pass (baseline)"]
    print(f"| case (median of {args.runs}) | seconds | × python start |")
    print("|---|---:|---:|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.3f} | {seconds / baseline:.1f} |")


if __name__ == "__main__":
    main()
