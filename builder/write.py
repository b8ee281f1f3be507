"""Stage 6, write: the FileTree -> the output folder, as one all-or-nothing step.

Only files whose bytes changed are written; files an earlier build generated (listed in
the manifest) and no longer produced are removed; files mpforge did not generate are
never touched. New content is staged in temp files first, then swapped in with
os.replace, keeping the old files as backups until the end, so any failure (disk full,
permission, Ctrl-C) restores the previous output exactly. A lock file keeps two builds
from writing the same folder at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Problem, UserError
from .filetree import FileTree

MANIFEST = ".mpforge-manifest.json"
LOCK = ".mpforge.lock"
LOCK_TIMEOUT = 30.0
_TMP = ".mpforge-tmp"


@dataclass
class WriteResult:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def write_tree(tree: FileTree, out_dir: Path) -> WriteResult:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with _locked(out_dir):
            return _write_locked(tree, out_dir)
    except OSError as exc:
        where = exc.filename or out_dir
        raise UserError([Problem(f"cannot write output: {where}: {exc.strerror}",
                                 hint="nothing was changed; check the folder's permissions and free space")]) from exc


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    with open(out_dir / LOCK, "a+") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UserError([Problem(f"another mpforge build is writing to {out_dir}",
                                             hint="wait for it to finish, or build into another folder")]) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(out_dir: Path) -> set[str]:
    """Paths the previous build generated; empty when there is no (readable) manifest.

    The manifest sits in the output folder, which may come from anywhere (a zip, a
    repository), and its files are the ones a build may overwrite or remove: entries that
    are not plain relative paths inside the folder ('../x', '/etc/x') are ignored.
    """
    try:
        files = json.loads((out_dir / MANIFEST).read_text("utf-8"))["files"]
        if not isinstance(files, list):
            return set()
        return {f for f in files if isinstance(f, str) and _plain_relative(f)}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _plain_relative(path: str) -> bool:
    parts = path.split("/")
    return (bool(path) and "\\" not in path and "\x00" not in path and ":" not in parts[0]
            and all(part not in ("", ".", "..") for part in parts))


def _write_locked(tree: FileTree, out_dir: Path) -> WriteResult:
    previous = read_manifest(out_dir)
    result = WriteResult(out_dir)
    changes: dict[str, bytes] = {}
    foreign = []
    root = out_dir.resolve()
    for path, content in tree.items():
        target = out_dir / path
        if not os.path.lexists(target):
            pass
        elif target.is_symlink() or not target.is_file():
            # A link, or a folder where a generated file goes: never replaced unless a
            # build made it (a folder never is).
            if path not in previous or target.is_dir() and not target.is_symlink():
                foreign.append(path)
        elif target.read_bytes() == content:
            result.unchanged.append(path)
            continue
        elif path not in previous:
            foreign.append(path)
        changes[path] = content
    if foreign:
        raise UserError([Problem(f"output folder has a file mpforge did not generate: {p}", file=p,
                                 hint="build into an empty folder, or move the file away")
                         for p in foreign])
    stale = sorted(p for p in previous - set(tree) if (out_dir / p).is_file() or (out_dir / p).is_symlink())
    inside: dict[Path, bool] = {}  # per folder: a build touches many files in few folders
    outside = [p for p in [*changes, *stale] if not _inside(root, (out_dir / p).parent, inside)]
    if outside:
        raise UserError([Problem(f"output path {p} leads out of the output folder through a link", file=p,
                                 hint="replace the linked folder inside the output with a real one")
                         for p in outside])
    manifest = json.dumps({"generator": "mpforge", "files": sorted(tree)}, indent=2) + "\n"
    if changes or stale or not (out_dir / MANIFEST).is_file():
        changes[MANIFEST] = manifest.encode("utf-8")
    _commit(out_dir, changes, stale)
    result.written = sorted(p for p in changes if p != MANIFEST)
    result.removed = stale
    return result


def _inside(root: Path, folder: Path, known: dict[Path, bool]) -> bool:
    """Whether `folder`, links resolved, is the output folder `root` or inside it."""
    if folder not in known:
        resolved = folder.resolve()
        known[folder] = resolved == root or root in resolved.parents
    return known[folder]


def _commit(out_dir: Path, changes: dict[str, bytes], stale: list[str]) -> None:
    """Stage every change, then swap all in; on any failure put everything back.

    Ctrl-C (SIGINT) is held off for the whole commit and acted on only where the
    folder is consistent: between staged files (nothing swapped yet), and once every
    file is swapped in (the commit is then undone). So an interrupt can never land
    halfway through a swap, or in the middle of putting things back.
    """
    tag = f"{_TMP}-{os.getpid()}"
    created_dirs: list[Path] = []
    staged: list[tuple[Path, Path]] = []  # (temp file, target)
    # (target, backup or None if it was new), recorded before the rename it describes,
    # so a rollback covers a rename that was interrupted or failed.
    swapped: list[tuple[Path, Path | None]] = []
    with _deferred_interrupt() as interrupted:
        try:
            for path, content in changes.items():
                if interrupted():
                    raise KeyboardInterrupt
                target = out_dir / path
                _make_dirs(target.parent, out_dir, created_dirs)
                temp = target.with_name(f".{target.name}.{tag}")
                staged.append((temp, target))
                with open(temp, "wb") as handle:
                    handle.write(content)
            for temp, target in staged:
                backup = target.with_name(f".{target.name}.{tag}.bak") if os.path.lexists(target) else None
                swapped.append((target, backup))
                if backup is not None:
                    os.replace(target, backup)
                os.replace(temp, target)
            for path in stale:
                target = out_dir / path
                backup = target.with_name(f".{target.name}.{tag}.bak")
                swapped.append((target, backup))
                os.replace(target, backup)
            if interrupted():
                raise KeyboardInterrupt
        except BaseException:
            _rollback(staged, swapped, created_dirs)
            raise
        # Committed: from here on only the backups go (a backup that cannot be removed
        # stays as a hidden file; the new output is complete either way).
        for _, backup in swapped:
            if backup is not None:
                try:
                    backup.unlink(missing_ok=True)
                except OSError:
                    pass
        for path in stale:
            _remove_empty_dirs((out_dir / path).parent, out_dir)
    if interrupted():
        raise KeyboardInterrupt  # it came after the commit point: the new output is complete


@contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Hold SIGINT off; yields a function telling whether one arrived meanwhile.

    Only the main thread can handle signals; elsewhere (a dev server's worker thread)
    this changes nothing and reports no interrupt.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield lambda: False  # someone else handles SIGINT (or ignores it): leave it to them
        return
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield lambda: bool(received)
    finally:
        signal.signal(signal.SIGINT, previous)


def _rollback(staged: list[tuple[Path, Path]], swapped: list[tuple[Path, Path | None]],
              created_dirs: list[Path]) -> None:
    """Put every swapped file back, delete the staged ones; best effort to the end.

    A step that fails does not stop the others; the first failure is raised once
    everything else is back, naming what could not be restored (its backup is kept).
    """
    failures: list[str] = []
    for target, backup in reversed(swapped):
        try:
            if backup is None:
                target.unlink(missing_ok=True)
            elif os.path.lexists(backup):
                os.replace(backup, target)
            # else: the rename to the backup never happened; the target is untouched.
        except OSError as exc:
            failures.append(f"{target}: {exc.strerror} (its previous content is in {backup})")
    for temp, _ in staged:
        try:
            temp.unlink(missing_ok=True)
        except OSError as exc:
            failures.append(f"{temp}: {exc.strerror}")
    for directory in reversed(created_dirs):
        try:
            directory.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                failures.append(f"{directory}: {exc.strerror}")
    if failures:
        raise UserError([Problem(f"could not restore the previous output: {f}",
                                 hint="the build failed while writing and undoing it failed too")
                         for f in failures])


def _make_dirs(directory: Path, out_dir: Path, created: list[Path]) -> None:
    missing = []
    while directory != out_dir and not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(d)


def _remove_empty_dirs(directory: Path, out_dir: Path) -> None:
    while directory != out_dir:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
