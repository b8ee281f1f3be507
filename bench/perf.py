"""mpforge's performance benchmark (issue 10): one run, every figure, with baselines.

    pip install -r bench/requirements.txt     # copier, the peer
    python bench/perf.py [--runs 5] [--copier-runs 1]

Each case is a whole command in a fresh process (what CI and users pay), timed as the
median of --runs. Baselines measured in the same run: `python -c pass` (for start-up),
a plain jinja2 script rendering the same files from the same spec (the floor,
bench/floor_jinja.py) and copier generating the same tree (the peer,
bench/copier_peer.py). Prints a markdown table of seconds and ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from synthetic import REPO, write_spec

BENCH = Path(__file__).resolve().parent
PY = sys.executable
MPFORGE = [PY, "-m", "builder"]
# What `mpforge dev` does on a save: rebuild in the same process. Prints the median
# seconds of `runs` one-page edits of the spec in argv[1], building into argv[2].
IN_PROCESS_EDIT = """
import statistics, sys, time
from pathlib import Path
from builder.api import build
from builder.session import BuildSession
spec, out, runs = Path(sys.argv[1]) / "mpforge.yaml", sys.argv[2], int(sys.argv[3])
original = spec.read_text("utf-8")
session = BuildSession()
build(spec, out, force=True, session=session)
times = []
for i in range(runs):
    spec.write_text(original.replace("text: Page 500\\n", f"text: Page 500 edit {i}\\n", 1), "utf-8")
    start = time.perf_counter()
    build(spec, out, force=True, session=session)
    times.append(time.perf_counter() - start)
spec.write_text(original, "utf-8")
print(statistics.median(times))
"""
# Runs a command and prints its peak RSS in KiB (the child's ru_maxrss).
PEAK_RSS = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def timed(cmd: list[str], runs: int, before=None) -> float:
    """Median wall-clock seconds of `cmd`; `before()` runs untimed ahead of each run."""
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh(folder: Path):
    return lambda: shutil.rmtree(folder, ignore_errors=True)


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".mpforge"))


def batch_specs(root: Path, count: int) -> list[str]:
    """`count` merchants: the two samples under different names and app ids."""
    specs = []
    for i in range(count):
        sample = REPO / "sample_projects" / ("harbour-coffee" if i % 2 else "linli-fresh")
        folder = root / f"merchant-{i:03d}"
        shutil.copytree(sample, folder)
        spec = folder / "mpforge.yaml"
        data = yaml.safe_load(spec.read_text("utf-8"))
        data["app"]["name"] = f"{data['app']['name']} {i}"
        spec.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        specs.append(str(folder))
    return specs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--copier-runs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    runs = args.runs
    rows: list[tuple[str, float, str]] = []

    def row(name: str, seconds: float, ratio: str = "") -> None:
        rows.append((name, seconds, ratio))
        print(f"  {name}: {seconds:.3f} s {ratio}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = timed([PY, "-c", "pass"], runs)
        row("python -c pass (baseline)", start)
        for flag in ("--help", "--version"):
            seconds = timed([*MPFORGE, flag], runs)
            row(f"mpforge {flag}", seconds, f"{seconds / start:.1f}× python start")

        for sample in ("harbour-coffee", "linli-fresh"):
            out = tmp / f"out-{sample}"
            command = [*MPFORGE, "build", str(REPO / "sample_projects" / sample), "-o", str(out)]
            seconds = timed(command, runs, fresh(out))
            row(f"sample {sample}: full build", seconds)

        full: dict[int, float] = {}
        for pages in (10, 100, 200, 1000):
            spec_dir = tmp / f"spec{pages}"
            write_spec(pages, spec_dir)
            out, floor_out, copier_out = tmp / f"out{pages}", tmp / f"floor{pages}", tmp / f"copier{pages}"
            floor = timed([PY, str(BENCH / "floor_jinja.py"), str(spec_dir), str(floor_out)], runs, fresh(floor_out))
            full[pages] = timed([*MPFORGE, "build", str(spec_dir), "-o", str(out)], runs, fresh(out))
            copier_runs = args.copier_runs if pages >= 200 else runs
            peer = timed([PY, str(BENCH / "copier_peer.py"), str(spec_dir), str(copier_out)], copier_runs,
                         fresh(copier_out))
            row(f"{pages} pages: jinja2 floor ({size_of(floor_out) // 1024} KiB)", floor)
            row(f"{pages} pages: copier peer", peer)
            row(f"{pages} pages: mpforge full build ({size_of(out) // 1024} KiB)", full[pages],
                f"{full[pages] / floor:.2f}× floor, copier {peer / full[pages]:.1f}× slower")
            noop = timed([*MPFORGE, "build", str(spec_dir), "-o", str(out)], runs)
            row(f"{pages} pages: no-op rebuild", noop, f"{noop / full[pages]:.0%} of full build")

        spec_dir, out = tmp / "spec1000", tmp / "out1000"
        spec = spec_dir / "mpforge.yaml"
        original = spec.read_text("utf-8")
        edits = iter(range(1_000_000))

        def edit_one_page() -> None:
            spec.write_text(original.replace("text: Page 500\n", f"text: Page 500 edit {next(edits)}\n", 1), "utf-8")

        edit = timed([*MPFORGE, "build", str(spec_dir), "-o", str(out)], runs, edit_one_page)
        row("1000 pages: `mpforge build` after editing one page", edit, f"{edit / full[1000]:.0%} of full build")
        spec.write_text(original, "utf-8")
        in_process = float(subprocess.run([PY, "-c", IN_PROCESS_EDIT, str(spec_dir), str(out), str(runs)],
                                          check=True, capture_output=True, text=True).stdout)
        row("1000 pages: rebuild in process after editing one page (mpforge dev)", in_process,
            f"{in_process / full[1000]:.0%} of full build")
        check = timed([*MPFORGE, "check", str(spec_dir)], runs)
        row("1000 pages: mpforge check", check, f"{check / full[1000]:.0%} of full build")
        shutil.rmtree(out)
        peak = subprocess.run([PY, "-c", PEAK_RSS, *MPFORGE, "build", str(spec_dir), "-o", str(out)],
                              check=True, capture_output=True, text=True).stdout
        rows.append(("1000 pages: peak memory of a full build (MiB)", int(peak) / 1024, ""))

        specs = batch_specs(tmp / "batch", args.batch)
        one = timed([*MPFORGE, "build", *specs, "-o", str(tmp / "b1"), "--jobs", "1"], runs, fresh(tmp / "b1"))
        two = timed([*MPFORGE, "build", *specs, "-o", str(tmp / "b2"), "--jobs", "2"], runs, fresh(tmp / "b2"))
        row(f"batch of {args.batch} merchants, --jobs 1", one)
        row(f"batch of {args.batch} merchants, --jobs 2", two, f"{one / two:.2f}× faster than --jobs 1")

    print(f"\n| case (median of {runs}; copier from 200 pages: {args.copier_runs}) | value | ratio |")
    print("|---|---:|---|")
    for name, value, ratio in rows:
        print(f"| {name} | {value:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
