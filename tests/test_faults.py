"""Faults while writing: the previous output survives every one of them, exactly.

Each test starts from an output folder holding a complete build of one version of a
spec, then builds a second version (every page's text changed, a page removed, a page
added: changed files, new folders and stale files all at once) and breaks the write:
the folder not writable, the disk full halfway, Ctrl-C as an exception and as a real
SIGINT (in-process and to a `mpforge` process building a large spec), two builds at
once. Afterwards the folder is byte-for-byte the old build (or, where the build was
allowed to finish, exactly the new one) and no temp or backup file is left anywhere.

A plugin raising in each hook is covered by tests/test_plugins.py.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, tree_hashes, write_project

from builder import write

STATE_FILES = {".mpforge.lock", ".mpforge-cache.json"}  # bookkeeping, not build output


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
    """Temp and backup files of an interrupted write, anywhere under `folders`."""
    return sorted(str(p) for folder in folders for p in folder.rglob("*")
                  if write._TMP in p.name or p.name.endswith(".bak") or p.name.startswith(".mpforge-cache.json."))


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
    staged, renames = [], []
    real_open, real_replace = open, os.replace

    def counting_open(path, mode="r", *args, **kwargs):
        if write._TMP in str(path) and "w" in mode:
            staged.append(path)
        return real_open(path, mode, *args, **kwargs)

    def counting_replace(src, dst):
        if write._TMP in f"{src}{dst}":  # os is shared: leave other modules' renames alone
            renames.append(src)
        real_replace(src, dst)

    write.open = counting_open
    write.os.replace = counting_replace
    try:
        assert cli("build", Site.v2, "-o", probe).exit_code == 0
    finally:
        del write.open
        write.os.replace = real_replace
    Site.staged, Site.renames = len(staged), len(renames)
    assert Site.staged >= 8 and Site.renames >= 2 * Site.staged  # every changed file, plus stale ones
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
    read_only(*folders, *([site.out / write.LOCK] if what == "folders-and-lock" else []))
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
    """The `nth` temp file write.py stages (0-based) calls `on_write(handle, data)`."""
    real_open = open
    count = [0]

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if write._TMP in str(path) and "w" in mode:
            count[0] += 1
            if count[0] - 1 == nth:
                return _StagedFile(handle, on_write)
        return handle

    monkeypatch.setattr(write, "open", fake_open, raising=False)


def break_rename(monkeypatch, nth: int, exc: BaseException | None = None, signal_instead: bool = False) -> list:
    """The `nth` os.replace in write.py (0-based) raises `exc`, or sends SIGINT and succeeds."""
    real_replace = os.replace
    calls: list = []

    def fake_replace(src, dst):
        if write._TMP not in f"{src}{dst}":  # not write.py's (os is shared with the build cache)
            return real_replace(src, dst)
        calls.append((src, dst))
        if len(calls) - 1 == nth:
            if signal_instead:
                real_replace(src, dst)
                os.kill(os.getpid(), signal.SIGINT)
                return
            raise exc
        real_replace(src, dst)

    monkeypatch.setattr(write.os, "replace", fake_replace)
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
        if write._TMP not in f"{src}{dst}":
            return real_replace(src, dst)
        calls.append(src)
        # Swap phase: fail the third rename; rollback: refuse to put the first file back.
        if len(calls) == 3 or (str(src).endswith(".bak") and len(calls) > 3):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(write.os, "replace", fake_replace)
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
    real_unlink = Path.unlink
    sent = []

    def unlink(self, missing_ok=False):
        if self.name.endswith(".bak") and not sent:  # removing the first backup: committed
            sent.append(self)
            os.kill(os.getpid(), signal.SIGINT)
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
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


def test_sigint_to_a_large_build_process(large_site, cli):
    """Ctrl-C lands while the build is writing (the first temp file has appeared; staging
    ~1,500 files then takes a few hundred milliseconds more)."""
    site = large_site(300)
    process = subprocess.Popen(mpforge("build", site.v2, "-o", site.out), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if any(write._TMP in p.name for p in site.out.iterdir()):
            break
        time.sleep(0.0005)
    process.send_signal(signal.SIGINT)
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


def test_a_build_waits_for_the_lock(site):
    """While another build holds the lock, a build waits (writing nothing), then runs."""
    with open(site.out / write.LOCK, "a+") as lock:
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


def test_a_build_gives_up_on_a_held_lock_clearly(site, cli, monkeypatch):
    monkeypatch.setattr(write, "LOCK_TIMEOUT", 0.3)
    with open(site.out / write.LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, f"another mpforge build is writing to {site.out}")


# --- what is in the folder ------------------------------------------------------------------------


def test_manifest_entries_outside_the_folder_are_ignored(site, cli):
    """The manifest lists what a build may remove; '../x' must not reach outside the folder."""
    victim = site.out.parent / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    manifest = json.loads((site.out / write.MANIFEST).read_text())
    manifest["files"] += ["../victim.txt", str(victim), "pages/../../victim.txt"]
    (site.out / write.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    assert cli("build", site.v2, "-o", site.out).exit_code == 0
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert outputs(site.out) == site.expected_v2


def test_a_folder_where_a_generated_file_goes_is_refused(site, cli):
    (site.out / "pages/home/home.js").unlink()
    (site.out / "pages/home/home.js").mkdir()
    (site.out / "pages/home/home.js/notes.txt").write_text("mine", encoding="utf-8")
    site.before = tree_hashes(site.out)
    result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, "output folder has a file mpforge did not generate: pages/home/home.js")


def test_a_linked_folder_leading_out_of_the_output_is_refused(site, cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(site.out / "pages" / "about", elsewhere)
    (site.out / "pages" / "about").symlink_to(elsewhere, target_is_directory=True)
    site.before = tree_hashes(site.out)
    elsewhere_before = tree_hashes(elsewhere)
    result = cli("build", site.v2, "-o", site.out)
    assert_intact(site, result, "leads out of the output folder through a link")
    assert tree_hashes(elsewhere) == elsewhere_before
