"""The bad-input corpus: every spec in tests/bad_inputs/ has one kind of mistake and
carries the problem mpforge must report, as `# expect: LINE:COL: path: message` on its
first line(s) (or in `<name>.expect` beside files that cannot hold a comment: JSON, a
BOM). For each: `mpforge check` and `mpforge build` exit 1 with that located message and
no traceback, and a build leaves an existing output folder byte-for-byte as it was.

Inputs too big to commit (over the size limit, nesting deep enough to crash a recursive
parser) are generated here; the alias bomb is measured for time and memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, tree_hashes, write_project

from builder import load
from builder.errors import SpecError

CORPUS = Path(__file__).parent / "bad_inputs"
FILES = sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix in (".yaml", ".json"))
# Run through a real `mpforge` process too (the rest run in-process through click).
SUBPROCESS = ["alias-bomb.yaml", "invalid-utf8.yaml", "utf8-bom.yaml", "huge-number.yaml", "unknown-block-type.yaml",
              "asset-dotdot.yaml", "coupon-end-before-start.yaml", "json-duplicate-key.json",
              "asset-name-too-long.yaml", "assets-folder-link-out-of-project.yaml"]
LOCATED = re.compile(r"^error: (?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): ", re.M)


def expectations(path: Path) -> list[str]:
    """`LINE:COL: path: message` fragments the output must contain, in order of the file."""
    sidecar = path.with_name(path.name + ".expect")
    if sidecar.exists():
        lines = sidecar.read_text("utf-8").splitlines()
        return [line.removeprefix("expect: ") for line in lines if line.startswith("expect: ")]
    found = []
    for line in path.read_bytes().split(b"\n"):
        if not line.startswith(b"# expect: "):
            break
        found.append(line[len(b"# expect: "):].decode("utf-8"))
    return found


def mpforge(*args: str) -> list[str]:
    """The installed console script, or the module when the script is not on PATH."""
    script = shutil.which("mpforge")
    return [script, *args] if script else [sys.executable, "-m", "builder", *args]


def assert_reported(path: Path, stderr: str, output: str) -> None:
    assert "Traceback" not in output, output
    for expected in expectations(path):
        assert f"error: {path.name}:{expected}" in stderr, f"missing {expected!r} in:\n{stderr}"
    # Every error names the file, line and column (the summary line is not an error).
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors and all(LOCATED.match(line) for line in errors), stderr


@pytest.fixture(scope="module")
def good_output(tmp_path_factory) -> Path:
    """An output folder holding a complete good build, to copy for each test."""
    from click.testing import CliRunner

    from builder.cli import main

    root = tmp_path_factory.mktemp("good")
    spec = write_project(root / "project", MINIMAL_SPEC)
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(root / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return root / "out"


@pytest.fixture
def previous_output(good_output, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(good_output, out)
    return out


def test_corpus_is_complete():
    assert len(FILES) >= 40
    for path in FILES:
        assert expectations(path), f"{path.name} has no '# expect:' line and no .expect file"
    sidecars = {p.name.removesuffix(".expect") for p in CORPUS.glob("*.expect")}
    assert sidecars <= {p.name for p in FILES}, "a .expect file without its spec"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_check_reports_the_located_problem(path, cli):
    result = cli("check", path)
    assert result.exit_code == 1, result.output
    assert_reported(path, result.stderr, result.output)
    # The JSON report (for editors and CI) carries the same locations.
    result = cli("check", path, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    located = {f"{p['line']}:{p['column']}: " for p in report["problems"]}
    for expected in expectations(path):
        assert expected.split(": ", 1)[0] + ": " in located
    assert all(p["file"] == path.name for p in report["problems"])


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_build_leaves_the_previous_output_untouched(path, cli, previous_output):
    before = tree_hashes(previous_output)
    corpus_before = tree_hashes(CORPUS)
    result = cli("build", path, "-o", previous_output)
    assert result.exit_code == 1, result.output
    assert_reported(path, result.stderr, result.output)
    assert tree_hashes(previous_output) == before
    assert tree_hashes(CORPUS) == corpus_before  # no dist/, no cache, nothing beside the specs


def test_real_processes_report_the_same(previous_output):
    """A subset through the installed command, as a user runs it (in parallel: each ~0.4 s)."""
    before = tree_hashes(previous_output)
    runs = [(name, "check") for name in SUBPROCESS] + [(name, "build") for name in SUBPROCESS[:3]]

    def run(item):
        name, command = item
        extra = ["-o", str(previous_output)] if command == "build" else []
        return item, subprocess.run(mpforge(command, str(CORPUS / name), *extra),
                                    capture_output=True, text=True, timeout=60)

    with ThreadPoolExecutor(4) as pool:
        for (name, command), result in pool.map(run, runs):
            assert result.returncode == 1, (name, command, result.stderr)
            assert_reported(CORPUS / name, result.stderr, result.stdout + result.stderr)
    assert tree_hashes(previous_output) == before


# --- generated inputs -------------------------------------------------------------------


def test_oversize_spec_is_refused_before_parsing(tmp_path, cli, previous_output, monkeypatch):
    spec = tmp_path / "big.yaml"
    filler = "# " + "x" * 97 + "\n"  # valid YAML: parsing would find nothing wrong
    spec.write_text("spec_version: 1\n" + filler * (load.MAX_SPEC_BYTES // len(filler) + 1), encoding="utf-8")
    assert spec.stat().st_size > load.MAX_SPEC_BYTES

    def no_parsing(*args, **kwargs):
        raise AssertionError("an over-size spec must not be parsed")

    monkeypatch.setattr(load, "parse_spec", no_parsing)
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load.load_spec(spec)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"refusing took {elapsed:.3f} s"
    assert str(info.value).startswith(f"big.yaml:1:1: spec is {spec.stat().st_size} bytes, over the "
                                      f"{load.MAX_SPEC_BYTES} byte limit")
    before = tree_hashes(previous_output)
    for args in (("check", spec), ("build", spec, "-o", previous_output)):
        result = cli(*args)
        assert result.exit_code == 1 and "error: big.yaml:1:1: spec is" in result.stderr
        assert "Traceback" not in result.output
    assert tree_hashes(previous_output) == before


def test_alias_bomb_is_refused_fast_in_bounded_memory():
    """10^12 strings once expanded; refused while composing, before expanding anything."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 12)]
    raw = ("\n".join(lines) + "\n").encode()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SpecError) as info:
            load.parse_spec(raw, Path("bomb.yaml"))
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "spec expands to more than" in str(info.value)
    assert elapsed < 0.5, f"refusing took {elapsed:.3f} s"
    assert peak < 5 * 1024 * 1024, f"refusing used {peak / 1e6:.1f} MB"


def test_aliases_within_the_limit_still_work():
    raw = b"base: &s {lat: 31.2}\nstores:\n  - *s\n  - *s\n"
    spec = load.parse_spec(raw, Path("a.yaml"))
    assert spec.data["stores"] == [{"lat": 31.2}, {"lat": 31.2}]
    assert spec.values[("stores", 1, "lat")] == load.Mark(1, 16)  # where the anchored value is


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_nesting_deep_enough_to_crash_a_recursive_parser(tmp_path, opening, closing):
    """libyaml's composer recursed in C: 100,000 brackets (200 KB) was a segmentation fault."""
    spec = tmp_path / "deep.yaml"
    depth = 200_000
    spec.write_text("spec_version: 1\nnotes: " + opening * depth + "x" + closing * depth + "\n", encoding="utf-8")
    result = subprocess.run(mpforge("check", str(spec)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])
    assert "error: deep.yaml:2:" in result.stderr
    # Our composer refuses at level 65; some libyaml builds (PyYAML's wheels bundle their
    # own) stop flow collections at 1,000 levels first. Either is a located user error.
    assert ("nested more than 64 levels deep" in result.stderr
            or "exceeded maximum nesting depth" in result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_a_spec_without_a_known_size_is_still_cut_off_at_the_limit(tmp_path, monkeypatch):
    """stat() is not trusted alone: a pipe (or a file still growing) is read up to the limit."""
    fifo = tmp_path / "mpforge.yaml"
    os.mkfifo(fifo)
    monkeypatch.setattr(load, "MAX_SPEC_BYTES", 64)

    def feed():
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write("spec_version: 1\n" + "# padding\n" * 100)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with pytest.raises(SpecError, match=r"spec is more than 64 bytes, over the 64 byte limit"):
            load.load_spec(fifo)
    finally:
        writer.join(timeout=5)
