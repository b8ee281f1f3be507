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
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

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
    """Paths the previous build generated; empty when there is no (readable) manifest."""
    try:
        return set(json.loads((out_dir / MANIFEST).read_text("utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _write_locked(tree: FileTree, out_dir: Path) -> WriteResult:
    previous = read_manifest(out_dir)
    result = WriteResult(out_dir)
    changes: dict[str, bytes] = {}
    foreign = []
    for path, content in tree.items():
        target = out_dir / path
        if target.is_file():
            if target.read_bytes() == content:
                result.unchanged.append(path)
                continue
            if path not in previous:
                foreign.append(path)
        changes[path] = content
    if foreign:
        raise UserError([Problem(f"output folder has a file mpforge did not generate: {p}", file=p,
                                 hint="build into an empty folder, or move the file away")
                         for p in foreign])
    stale = sorted(p for p in previous - set(tree) if (out_dir / p).is_file())
    manifest = json.dumps({"generator": "mpforge", "files": sorted(tree)}, indent=2) + "\n"
    if changes or stale or not (out_dir / MANIFEST).is_file():
        changes[MANIFEST] = manifest.encode("utf-8")
    _commit(out_dir, changes, stale)
    result.written = sorted(p for p in changes if p != MANIFEST)
    result.removed = stale
    return result


def _commit(out_dir: Path, changes: dict[str, bytes], stale: list[str]) -> None:
    """Stage every change, then swap all in; on any failure put everything back."""
    tag = f"{_TMP}-{os.getpid()}"
    created_dirs: list[Path] = []
    staged: list[tuple[Path, Path]] = []  # (temp file, target)
    swapped: list[tuple[Path, Path | None]] = []  # (target, backup or None if it was new)
    try:
        for path, content in changes.items():
            target = out_dir / path
            _make_dirs(target.parent, out_dir, created_dirs)
            temp = target.with_name(f".{target.name}.{tag}")
            with open(temp, "wb") as handle:
                staged.append((temp, target))
                handle.write(content)
        for temp, target in staged:
            backup = None
            if target.exists():
                backup = target.with_name(f".{target.name}.{tag}.bak")
                os.replace(target, backup)
            swapped.append((target, backup))
            os.replace(temp, target)
        for path in stale:
            target = out_dir / path
            backup = target.with_name(f".{target.name}.{tag}.bak")
            os.replace(target, backup)
            swapped.append((target, backup))
    except BaseException:
        _rollback(staged, swapped, created_dirs)
        raise
    for target, backup in swapped:
        if backup is not None:
            backup.unlink()
    for path in stale:
        _remove_empty_dirs((out_dir / path).parent, out_dir)


def _rollback(staged, swapped, created_dirs) -> None:
    for target, backup in reversed(swapped):
        if backup is None:
            target.unlink(missing_ok=True)
        else:
            os.replace(backup, target)
    for temp, _ in staged:
        temp.unlink(missing_ok=True)
    for directory in reversed(created_dirs):
        try:
            directory.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise


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
