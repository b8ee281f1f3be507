"""Faults while writing: the previous output survives every one of them, exactly.

Each test starts from an output folder holding a complete build of one version of a
spec, then builds a second version (every page's text changed, a page removed, a page
added: changed files, new folders and stale files all at once) and breaks the write:
the folder not writable, the disk full halfway, Ctrl-C as an exception and as a real
SIGINT, SIGTERM or SIGHUP (in-process and to a `mpforge` process building a large
spec), two builds at once, and the process dying (kill -9) at every step of the swap
and at random points of a 1000-page write. Afterwards (after a crash: once the next
command has run) the folder is byte-for-byte the old build (or, where the build got past
its commit point, exactly the new one) and no staging folder, temp file or journal is
left anywhere.

A plugin raising in each hook is covered by tests/test_plugins.py.
"""

from __future__ import annotations

import collections
import copy
import errno
import fcntl
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, tree_hashes, write_project

from builder import api, commit, output_folder, pipeline, write
from builder.build_cache import skip_if_unchanged
from builder.options import PluginOptions
from builder.output_folder import JOURNAL, LOCK, MANIFEST, TEMP_PREFIX

STATE_FILES = {LOCK, ".mpforge-cache.json"}  # bookkeeping, not build output


def spec_version(version: int, pages: int = 6) -> dict:
    """MINIMAL_SPEC grown to `pages` pages; each version changes every page's text, drops
    the last page of the other version and adds one of its own."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    for i in range(pages - 2):
        spec["pages"].append({"id": f"p{i}", "title": f"Page {i}", "blocks": [
            {"type": "heading", "text": f"Page {i}", "subtitle": "副标题"},
            {"type": "text", "text": "段落 " * 20},
            {"type": "product-list", "items": [{"name": f"商品 {j}", "price": 10 + j, "image": "banner.png"}
                                               for j in range(5)]},
            {"type": "button", "text": "Call", "link": {"phone": "400-820-1234"}},
        ]})
    for page in spec["pages"]:
        page["blocks"].insert(0, {"type": "notice-bar", "text": f"version {version}"})
    spec["pages"].append({"id": f"only-v{version}", "title": f"Only in {version}", "blocks": [{"type": "divider"}]})
    return spec


def outputs(folder: Path) -> dict[str, str]:
    """The build output proper: every file but the lock and the build cache record."""
    return {k: v for k, v in tree_hashes(folder).items() if k.split("/")[-1] not in STATE_FILES}


def leftovers(*folders: Path) -> list[str]:
    """Staging folders, temp files and journals of an interrupted write, anywhere under `folders`."""
    return sorted(str(p) for folder in folders for p in folder.rglob("*")
                  if TEMP_PREFIX in p.name or p.name == JOURNAL or p.name.endswith(".bak"))


def staged(*paths) -> bool:
    """Whether a path is in a commit's staging folder (the build cache's temp file is not)."""
    return any(TEMP_PREFIX in Path(path).parent.name for path in paths)


@pytest.fixture
def site(tmp_path, cli):
    """Specs v1 and v2, the output of v1 in `out`, and what a clean build of v2 gives."""

    class Site:
        v1 = write_project(tmp_path / "v1", spec_version(1))
        v2 = write_project(tmp_path / "v2", spec_version(2))
        out = tmp_path / "out"

    assert cli("build", Site.v2, "-o", tmp_path / "clean-v2").exit_code == 0
    Site.expected_v2 = outputs(tmp_path / "clean-v2")
    assert cli("build", Site.v1, "-o", Site.out).exit_code == 0
    Site.before = tree_hashes(Site.out)
    assert outputs(Site.out) != Site.expected_v2
    # How many files the v2 build stages and renames over v1 (on a copy), so that tests
    # can break the first, a middle and the last of them.
    probe = tmp_path / "probe"
    shutil.copytree(Site.out, probe)
    renames = []
    real_open, real_replace = open, os.replace

    def counting_open(path, mode="r", *args, **kwargs):
        if staged(path) and "x" in mode:
            staged_files.append(path)
        return real_open(path, mode, *args, **kwargs)

    def counting_replace(src, dst):
        if staged(src, dst):  # os is shared: leave other modules' renames alone
            renames.append(src)
        real_replace(src, dst)

    staged_files: list = []
    commit.open = counting_open
    commit.os.replace = counting_replace
    try:
        assert cli("build", Site.v2, "-o", probe).exit_code == 0
    finally:
        del commit.open
        commit.os.replace = real_replace
    # Staged: every changed file and the journal; renamed: the journal, then two renames
    # per changed file, one per new or stale file.
    Site.staged, Site.renames = len(staged_files), len(renames)
    assert Site.staged >= 8 and Site.renames >= 2 * Site.staged - 6
    return Site


WHERE = {"first": lambda n: 0, "middle": lambda n: n // 2, "last": lambda n: n - 1}


def assert_intact(site, result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert tree_hashes(site.out) == site.before
    assert leftovers(site.out, site.out.parent) == []


# --- the folder cannot be written --------------------------------------------------------


@pytest.fixture
def read_only():
    """Make folders (and files) unwritable for real: chmod, or as root (whom modes do not
    stop) the immutable attribute. Undone at the end whatever happens."""
    undo = []

    def make(*paths: Path) -> None:
        for path in paths:
            if os.geteuid() != 0:
                mode = path.stat().st_mode
                path.chmod(mode & ~0o222)
                undo.append(lambda p=path, m=mode: p.chmod(m))
            else:
                if shutil.which("chattr") is None:
                    pytest.skip("running as root without chattr: cannot make a folder unwritable")
                result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
                if result.returncode != 0:
                    pytest.skip(f"chattr +i not supported here: {result.stderr.strip()}")
                undo.append(lambda p=path: subprocess.run(["chattr", "-i", str(p)], check=True))

    yield make
    for step in reversed(undo):
        step()


@pytest.mark.parametrize("what", ["folders", "folders-and-lock"])
def test_output_folder_not_writable(site, cli, read_only, what):
    folders = [site.out, *(p for p in site.out.rglob("*") if p.is_dir())]
    read_only(*folders, *([site.out / LOCK] if what == "folders-and-lock" else []))
    result = cli("build", site.v2, "-o", site.out)
    reason = "Permission denied" if os.geteuid() != 0 else "Operation not permitted"
    assert_intact(site, result, "cannot write output: ")
    assert reason in result.stderr and "nothing was changed" in result.stderr


# --- a write or a rename fails midway ------------------------------------------------------


class _StagedFile:
    """A staged temp file whose write does something else: fail halfway, or signal."""

    def __init__(self, handle, on_write):
        self.handle, self.on_write = handle, on_write

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.handle.close()
        return False

    def write(self, data: bytes) -> int:
        return self.on_write(self.handle, data)


def break_staged_write(monkeypatch, nth: int, on_write) -> None:
    """The `nth` file the commit stages (0-based) calls `on_write(handle, data)`."""
    real_open = open
    count = [0]

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if staged(path) and "x" in mode:
            count[0] += 1
            if count[0] - 1 == nth:
                return _StagedFile(handle, on_write)
        return handle

    monkeypatch.setattr(commit, "open", fake_open, raising=False)


def break_rename(monkeypatch, nth: int, exc: BaseException | None = None, signal_instead: bool = False) -> list:
    """The `nth` os.replace of the commit (0-based) raises `exc`, or sends SIGINT and succeeds."""
    real_replace = os.replace
    calls: list = []

    def fake_replace(src, dst):
        if not staged(src, dst):  # not the commit's (os is shared with the build cache)
            return real_replace(src, dst)
        calls.append((src, dst))
        if len(calls) - 1 == nth:
            if signal_instead:
                real_replace(src, dst)
                os.kill(os.getpid(), signal.SIGINT)
                return
            raise exc
        real_replace(src, dst)

    monkeypatch.setattr(commit.os, "replace", fake_replace)
    return calls


def disk_full(handle, data: bytes) -> int:
    handle.write(data[: len(data) // 2])
    handle.flush()
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", WHERE)
def test_disk_full_while_staging(site, cli, monkeypatch, where):
    break_staged_write(monkeypatch, WHERE[where](site.staged), disk_full)
    result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, "cannot write output")
    assert "No space left on device" in result.stderr


@pytest.mark.parametrize("where", WHERE)
def test_rename_failing_midway_puts_everything_back(site, cli, monkeypatch, where):
    """os.replace fails after some files are already swapped in (the last rename moves the
    last stale file away: everything else is in place by then)."""
    calls = break_rename(monkeypatch, WHERE[where](site.renames), OSError(errno.EIO, os.strerror(errno.EIO)))
    result = cli("build", site.v2, "-o", site.out)
    assert len(calls) > WHERE[where](site.renames)
    assert_intact(site, result, "Input/output error")


def test_a_failed_rollback_says_where_the_previous_file_is(site, cli, monkeypatch):
    real_replace = os.replace
    calls = []

    def fake_replace(src, dst):
        if not staged(src, dst):
            return real_replace(src, dst)
        calls.append(src)
        # Swap phase: fail the fourth rename (the first is the journal's); rollback: refuse
        # to put the first file back.
        if len(calls) == 4 or (str(src).endswith(".old") and len(calls) > 4):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(commit.os, "replace", fake_replace)
    result = cli("build", site.v2, "-o", site.out)
    assert result.exit_code == 1
    assert "could not restore the previous output" in result.stderr
    assert "its previous content is in" in result.stderr
    assert "Traceback" not in result.output


# --- Ctrl-C ---------------------------------------------------------------------------------


def interrupt(handle, data: bytes) -> int:
    handle.write(data[:1])
    raise KeyboardInterrupt


def sigint_after_write(handle, data: bytes) -> int:
    written = handle.write(data)
    os.kill(os.getpid(), signal.SIGINT)
    return written


@pytest.mark.parametrize("where", ["first", "last"])
def test_keyboard_interrupt_while_staging(site, cli, monkeypatch, where):
    break_staged_write(monkeypatch, WHERE[where](site.staged), interrupt)
    assert_intact(site, cli("build", site.v2, "-o", site.out), "interrupted; the output folder holds the previous build")


@pytest.mark.parametrize("where", WHERE)
def test_keyboard_interrupt_while_swapping(site, cli, monkeypatch, where):
    break_rename(monkeypatch, WHERE[where](site.renames), KeyboardInterrupt())
    assert_intact(site, cli("build", site.v2, "-o", site.out), "interrupted; the output folder holds the previous build")


def test_sigint_while_staging(site, cli, monkeypatch):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    break_staged_write(monkeypatch, WHERE["middle"](site.staged), sigint_after_write)
    assert_intact(site, cli("build", site.v2, "-o", site.out), "interrupted; the output folder holds the previous build")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.parametrize("where", WHERE)
def test_sigint_while_swapping_is_held_then_undone(site, cli, monkeypatch, where):
    """A SIGINT between two renames never splits the swap: it completes, then is undone."""
    break_rename(monkeypatch, WHERE[where](site.renames), signal_instead=True)
    assert_intact(site, cli("build", site.v2, "-o", site.out), "interrupted; the output folder holds the previous build")


def test_sigint_after_the_commit_point_leaves_the_complete_new_build(site, cli, monkeypatch):
    real_unlink = os.unlink
    sent = []

    def unlink(path, *args, **kwargs):
        real_unlink(path, *args, **kwargs)
        if Path(path).name == JOURNAL and not sent:  # the journal gone: committed
            sent.append(path)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(commit.os, "unlink", unlink)
    result = cli("build", site.v2, "-o", site.out)
    assert sent and result.exit_code == 1 and "Traceback" not in result.output
    assert outputs(site.out) == site.expected_v2  # all new, nothing old, nothing half
    assert leftovers(site.out) == []


# --- real processes -----------------------------------------------------------------------------


def mpforge(*args) -> list[str]:
    script = shutil.which("mpforge")
    return [script, *map(str, args)] if script else [sys.executable, "-m", "builder", *map(str, args)]


@pytest.fixture
def large_site(tmp_path, cli):
    """As `site`, with many pages: a write that takes a while (150 pages: ~770 files)."""

    def make(pages: int):
        class Site:
            v1 = write_project(tmp_path / "v1", spec_version(1, pages=pages))
            v2 = write_project(tmp_path / "v2", spec_version(2, pages=pages))
            out = tmp_path / "out"

        assert cli("build", Site.v1, "-o", Site.out).exit_code == 0
        Site.before = tree_hashes(Site.out)
        return Site

    return make


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_a_large_build_process(large_site, cli, signum):
    """Ctrl-C, a `kill` or a closed terminal lands while the build is writing (the staging
    folder has appeared; staging ~1,500 files then takes a few hundred milliseconds more).
    SIGTERM and SIGHUP used to kill the process mid-swap: old and new pages mixed, and
    hundreds of temp and backup files left."""
    site = large_site(300)
    process = subprocess.Popen(mpforge("build", site.v2, "-o", site.out), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if any(TEMP_PREFIX in p.name for p in site.out.iterdir()):
            break
        time.sleep(0.0005)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.fail("the build finished before the interrupt; make the spec larger")
    assert process.returncode == 1, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert leftovers(site.out, site.out.parent) == []
    if tree_hashes(site.out) != site.before:
        # Only if this process was descheduled until the commit point had passed: then the
        # new build must be there whole (the in-process tests cover that case exactly).
        assert cli("build", site.v2, "-o", site.out.parent / "clean").exit_code == 0
        assert outputs(site.out) == outputs(site.out.parent / "clean")


def test_two_builds_at_once_take_turns(large_site):
    site = large_site(150)
    runs = [subprocess.Popen(mpforge("build", site.v2, "-o", site.out), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
    for p in runs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in results] == [0, 0], results
    clean = site.out.parent / "clean"
    assert subprocess.run(mpforge("build", site.v2, "-o", clean), capture_output=True).returncode == 0
    assert outputs(site.out) == outputs(clean)
    assert leftovers(site.out, site.out.parent) == []


SLOW_AFTER_BUILD = """
import random
import time

from builder.plugin_api import hookimpl

PLUGIN_NAME = "slow_after_build"


@hookimpl
def mpforge_after_build(result, spec):
    time.sleep(random.uniform(0, 0.08))  # an upload, say
"""


def test_two_specs_built_into_one_folder_at_once_leave_one_build_and_its_record(tmp_path):
    """Two merchants' specs built into one folder at the same time, 20 times over: the
    folder is wholly one of the two builds, and its cache record describes exactly that
    one. The record used to be written after the lock was released (and after the
    after-build hooks), so it could describe the other merchant's app, and the next build
    of that one said "up to date" over the wrong app."""
    specs = [write_project(tmp_path / name, {**MINIMAL_SPEC, "app": {"name": name}}) for name in ("acme", "bravo")]
    plugin = tmp_path / "slow_after_build.py"
    plugin.write_text(SLOW_AFTER_BUILD, encoding="utf-8")
    options = PluginOptions(extra=(str(plugin),))
    expected = {}
    for spec in specs:
        api.build(spec, tmp_path / f"clean-{spec.parent.name}", options)
        expected[spec] = outputs(tmp_path / f"clean-{spec.parent.name}")
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def run(spec: Path) -> None:
        try:
            api.build(spec, out, options, force=True)  # force: both really write, every round
        except BaseException as exc:
            errors.append(exc)

    for round_ in range(20):
        threads = [threading.Thread(target=run, args=(spec,)) for spec in specs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        built = [spec for spec in specs if outputs(out) == expected[spec]]
        assert len(built) == 1, f"round {round_}: the folder is neither build wholly"
        other = specs[1 - specs.index(built[0])]
        assert skip_if_unchanged(built[0], out, options) is not None, f"round {round_}"
        assert skip_if_unchanged(other, out, options) is None, f"round {round_}: the record is {other}'s"


# --- crashes: kill -9 at any point ----------------------------------------------------------------


BROKEN_SPEC = "spec_version: 1\napp: [\n"  # any next command will do: this one fails right after the lock


def crash_during_write(tree, out: Path, step: str, nth: int, after: bool = False) -> int:
    """Write `tree` into `out` in a child process that dies (os._exit: no cleanup, as
    after kill -9) just before (or `after`) its `nth` (0-based) `step`: "stage" (open a
    staged file), "rename" (a rename of the commit) or "unlink" (the journal's removal, the
    commit point). Returns the child's exit status: 9 if it died there."""
    pid = os.fork()
    if pid == 0:  # the child: the write and _exit, nothing of pytest's
        status = 1
        try:
            count = [0]

            def dying(real, ours):
                def call(*args, **kwargs):
                    if not ours(*args):
                        return real(*args, **kwargs)
                    if count[0] == nth and not after:
                        os._exit(9)
                    result = real(*args, **kwargs)
                    if count[0] == nth and after:
                        os._exit(9)
                    count[0] += 1
                    return result
                return call

            if step == "stage":
                commit.open = dying(open, lambda path, *rest: staged(path))
            elif step == "rename":
                os.replace = dying(os.replace, lambda src, dst, *rest: staged(src, dst))
            else:
                os.unlink = dying(os.unlink, lambda path, *rest: Path(path).name == JOURNAL)
            write.write_tree(tree, out)
            status = 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the writing child hung ({step} {nth})")


def test_a_crash_at_any_step_of_the_write_is_undone_by_the_next_command(site, cli, tmp_path):
    """The write dies (a real process death, no cleanup) before each rename of the swap in
    turn, before some staged files, and on either side of the commit point; the next
    command, whatever it is (here a build of a broken spec), finds the folder wholly the
    old build (any death before the commit point) or wholly the new one, with nothing
    left over."""
    tree = pipeline.prepare(site.v2).tree
    broken = write_project(tmp_path / "broken", BROKEN_SPEC)
    old = outputs(site.out)
    points = [("stage", 0, False), ("stage", site.staged // 2, False), ("stage", site.staged - 1, False),
              *(("rename", k, False) for k in range(site.renames)), ("rename", site.renames - 1, True),
              ("unlink", 0, False), ("unlink", 0, True)]
    for step, nth, after in points:
        out = tmp_path / "crashed"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(site.out, out)
        assert crash_during_write(tree, out, step, nth, after) == 9, (step, nth, after)
        result = cli("build", broken, "-o", out)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        committed = step == "unlink" and after
        assert outputs(out) == (site.expected_v2 if committed else old), (step, nth, after)
        assert leftovers(out) == [], (step, nth, after)


WRITER = """
import pickle, sys
from pathlib import Path
from builder.write import write_tree
tree = pickle.loads(Path(sys.argv[1]).read_bytes())
print("ready", flush=True)
write_tree(tree, Path(sys.argv[2]))
"""


def test_kill_9_at_random_points_of_a_1000_page_write(tmp_path, cli):
    """A 1000-page build (~4,000 files, every page changed) killed with SIGKILL 24 times at
    random points of its write: a random moment of staging, of the swap (the ~50 ms
    while files move), or of the whole write. The pipeline before the write writes
    nothing, so the trees are prepared once and handed to a writer process: each kill
    costs a write, not a build. After each kill the next command finds the folder wholly
    the old build or wholly the new one, with no staging folder, temp file or journal left.
    It used to be a mix of old and new pages with thousands of temp and backup files."""
    pickles, expected = {}, {}
    out = tmp_path / "out"
    for version in (1, 2):
        tree = pipeline.prepare(write_project(tmp_path / f"v{version}", spec_version(version, pages=1000))).tree
        pickles[version] = tmp_path / f"v{version}.pickle"
        pickles[version].write_bytes(pickle.dumps(tree))
    write.write_tree(pickle.loads(pickles[1].read_bytes()), out)
    expected[1] = outputs(out)
    broken = write_project(tmp_path / "broken", BROKEN_SPEC)

    def start(version: int) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(pickles[version]), str(out)], cwd=REPO,
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline() == "ready\n"
        return process

    def reached(process: subprocess.Popen, name: str) -> None:
        """Wait until a name starting with `name` shows in the folder (or the write ends)."""
        while process.poll() is None and not any(n.startswith(name) for n in os.listdir(out)):
            time.sleep(0.0005)

    began = time.monotonic()
    with start(2) as process:  # one whole write: how long it takes, and the new build's files
        process.wait(timeout=120)
    duration = time.monotonic() - began
    expected[2] = outputs(out)
    assert expected[2] != expected[1] and len(expected[2]) > 4000
    current, seen, rng = 2, collections.Counter(), random.Random(14)
    for i, aim in enumerate(["staging", "swap", "swap", "anywhere"] * 6):
        with start(3 - current) as process:
            if aim == "staging":
                reached(process, TEMP_PREFIX)
                time.sleep(rng.uniform(0, 0.1))
            elif aim == "swap":
                reached(process, JOURNAL)
                time.sleep(rng.uniform(0, 0.05))
            else:
                time.sleep(rng.uniform(0, duration))
            process.kill()
            process.wait(timeout=60)
        seen["finished" if process.returncode == 0 else "swapping" if (out / JOURNAL).exists()
             else "staging or cleaning up" if any(TEMP_PREFIX in n for n in os.listdir(out)) else "starting"] += 1
        result = cli("build", broken, "-o", out)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        now = outputs(out)
        assert now in (expected[1], expected[2]), (f"kill {i}: {sum(now.get(k) != v for k, v in expected[1].items())} "
                                                   f"files differ from v1, "
                                                   f"{sum(now.get(k) != v for k, v in expected[2].items())} from v2")
        assert leftovers(out) == [], f"kill {i}"
        current = 1 if now == expected[1] else 2
    assert seen["swapping"] >= 6, seen  # the kills did land while files moved


def test_kill_9_of_a_build_process_mid_swap(large_site, cli, tmp_path):
    """A real `mpforge build` killed with SIGKILL the moment its journal appears (files
    are moving): the next command puts the previous build back whole."""
    site = large_site(300)
    process = subprocess.Popen(mpforge("build", site.v2, "-o", site.out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline and not (site.out / JOURNAL).exists():
        time.sleep(0.0002)
    process.kill()
    process.wait(timeout=60)
    if process.returncode == 0:
        pytest.fail("the build finished before the kill; make the spec larger")
    assert (site.out / JOURNAL).exists() and tree_hashes(site.out) != site.before  # killed mid-swap
    result = cli("build", write_project(tmp_path / "broken", BROKEN_SPEC), "-o", site.out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert tree_hashes(site.out) == site.before  # the cache record and lock included
    assert leftovers(site.out, site.out.parent) == []
    result = cli("build", site.v1, "-o", site.out)
    assert result.exit_code == 0 and "up to date" in result.stdout  # the record went back with the files


def test_a_build_waits_for_the_lock(site):
    """While another build holds the lock, a build waits (writing nothing), then runs."""
    with open(site.out / LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = subprocess.Popen(mpforge("build", site.v2, "-o", site.out), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            assert process.poll() is None, process.communicate()
            assert tree_hashes(site.out) == site.before
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert outputs(site.out) == site.expected_v2


def test_a_lock_file_removed_by_a_failed_build_is_not_shared(tmp_path):
    """A build that created the lock file and then fails removes it again; a build that
    was waiting on that file must not go on holding a lock nobody else can see."""
    out = tmp_path / "out"
    out.mkdir()
    first_in, release, checked = threading.Event(), threading.Event(), []

    def failing() -> None:
        with pytest.raises(RuntimeError), output_folder.output_lock(out, create=True):
            first_in.set()
            release.wait(10)
            raise RuntimeError("refused")

    def waiting() -> None:
        with output_folder.output_lock(out, create=True), open(out / LOCK) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                checked.append("the lock file on disk was free: the lock held is on a removed file")
            except BlockingIOError:
                checked.append("held")

    threads = [threading.Thread(target=failing), threading.Thread(target=waiting)]
    threads[0].start()
    assert first_in.wait(10)
    threads[1].start()
    time.sleep(0.3)  # the second now waits on the first one's file
    release.set()
    for thread in threads:
        thread.join(15)
    assert checked == ["held"]


def test_a_build_gives_up_on_a_held_lock_clearly(site, cli, monkeypatch):
    monkeypatch.setattr(output_folder, "LOCK_TIMEOUT", 0.3)
    with open(site.out / LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, f"another mpforge build is writing to {site.out}")


# --- what is in the folder ------------------------------------------------------------------------


def test_manifest_entries_outside_the_folder_are_ignored(site, cli):
    """The manifest lists what a build may remove; '../x' must not reach outside the folder."""
    victim = site.out.parent / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    manifest = json.loads((site.out / MANIFEST).read_text())
    digest = hashlib.sha256(b"keep me").hexdigest()
    manifest["files"].update({"../victim.txt": digest, str(victim): digest, "pages/../../victim.txt": digest})
    (site.out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert cli("build", site.v2, "-o", site.out).exit_code == 0
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert outputs(site.out) == site.expected_v2


def test_a_folder_where_a_generated_file_goes_is_refused(site, cli):
    (site.out / "pages/home/home.js").unlink()
    (site.out / "pages/home/home.js").mkdir()
    (site.out / "pages/home/home.js/notes.txt").write_text("mine", encoding="utf-8")
    site.before = tree_hashes(site.out)
    result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, f"{site.out / 'pages/home/home.js'}: is not a file mpforge created")


def test_a_linked_folder_leading_out_of_the_output_is_refused(site, cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(site.out / "pages" / "about", elsewhere)
    (site.out / "pages" / "about").symlink_to(elsewhere, target_is_directory=True)
    site.before = tree_hashes(site.out)
    elsewhere_before = tree_hashes(elsewhere)
    result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, "leads out of the output folder through a link")
    assert tree_hashes(elsewhere) == elsewhere_before
