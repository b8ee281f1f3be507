"""Stage 6, write: the FileTree -> the output folder, as one all-or-nothing step.

Only files whose bytes changed are written, so the IDE's file watcher sees real changes
only. mpforge replaces or removes only files it created: the manifest
(`.mpforge-manifest.json`) lists each with the sha256 it was written with. Before writing
anything, a build refuses, naming the files, when
- a file mpforge did not create is where it would write (even one with the same bytes:
  adopting it would let a later build delete it);
- a file mpforge created was edited since (`overwrite_edits`, which `mpforge build --force`
  sets, overwrites or removes it anyway);
- a path leads out of the folder through a link.
Then `commit.commit` puts the changes in, all or nothing, even if the process is killed.

The caller holds the folder's lock (`output_folder.output_lock`) and has run
`commit.recover`; `write_tree` does both for the simple case.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .commit import commit, recover
from .errors import Problem, WriteRefused
from .filetree import FileTree
from .output_folder import (
    CACHE,
    MANIFEST,
    cannot_write,
    inside,
    output_lock,
    plain_relative,
    read_state_file,
)


@dataclass
class WriteResult:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def write_tree(tree: FileTree, out_dir: Path, *, overwrite_edits: bool = False) -> WriteResult:
    """Write `tree` into `out_dir` under the folder's lock, after undoing whatever a
    crashed build left there."""
    with output_lock(out_dir, create=True):
        recover(out_dir)
        return write_locked(tree, out_dir, overwrite_edits=overwrite_edits)


def parse_manifest(raw: bytes | None) -> dict[str, str | None]:
    """The files earlier builds created in the folder -> the sha256 they were written with.

    Entries that are not plain relative paths ('../x', '/etc/x') are ignored: the folder
    may come from anywhere. A manifest from before hashes were recorded (a plain list)
    owns its files with hash None: edits to them cannot be told.
    """
    try:
        files = json.loads(raw)["files"] if raw is not None else {}
    except (ValueError, KeyError, TypeError):
        return {}
    if isinstance(files, dict):
        return {p: h for p, h in files.items() if isinstance(h, str) and plain_relative(p)}
    if isinstance(files, list):
        return {p: None for p in files if isinstance(p, str) and plain_relative(p)}
    return {}


def _manifest(tree: FileTree) -> bytes:
    files = {path: tree.digest(path) for path in tree}
    return (json.dumps({"generator": "mpforge", "files": files}, indent=2) + "\n").encode("utf-8")


def write_locked(tree: FileTree, out_dir: Path, *, overwrite_edits: bool = False) -> WriteResult:
    """Write `tree` into `out_dir`, whose lock the caller holds (see the module's doc)."""
    with cannot_write(out_dir):
        recorded = read_state_file(out_dir / MANIFEST)
        owned = parse_manifest(recorded)
        result = WriteResult(out_dir)
        changes: dict[str, bytes] = {}
        foreign: list[str] = []
        edited: list[str] = []
        for path, content in tree.items():
            on_disk = _lstat(out_dir / path)
            if on_disk is None:
                changes[path] = content
            elif path not in owned or stat.S_ISDIR(on_disk.st_mode):
                foreign.append(path)
            else:
                current = _read_regular(out_dir / path, on_disk.st_mode)
                if current == content:
                    result.unchanged.append(path)
                    continue
                if _edited(current, owned[path]):
                    edited.append(path)
                changes[path] = content
        removed = []
        for path in sorted(owned.keys() - set(tree)):
            on_disk = _lstat(out_dir / path)
            if on_disk is None or stat.S_ISDIR(on_disk.st_mode):
                continue  # gone already, or a folder now: not a file mpforge wrote
            if _edited(_read_regular(out_dir / path, on_disk.st_mode), owned[path]):
                edited.append(path)
            removed.append(path)
        dirs, in_the_way = _missing_folders(out_dir, changes)
        _refuse(out_dir, foreign + in_the_way, [] if overwrite_edits else edited, [*changes, *removed])
        manifest = _manifest(tree)
        if changes or removed or recorded != manifest:
            changes[MANIFEST] = manifest
            # The cache record describes the folder before this commit: it goes in the same
            # all-or-nothing step (a killed build leaves no record that could say "up to date").
            stale_record = [CACHE] if os.path.lexists(out_dir / CACHE) else []
            commit(out_dir, changes, removed + stale_record, dirs)
    result.written = sorted(p for p in changes if p != MANIFEST)
    result.removed = removed
    return result


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_regular(path: Path, mode: int) -> bytes | None:
    """A regular file's bytes, never through a link; None for a link, FIFO or device (never
    opened: a FIFO would block)."""
    if not stat.S_ISREG(mode):
        return None
    with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NOFOLLOW | os.O_NONBLOCK)) as handle:
        return handle.read()


def _edited(current: bytes | None, recorded: str | None) -> bool:
    """Whether a file mpforge created differs from what it wrote: other bytes, or no longer
    a regular file (a link or FIFO put in its place)."""
    if current is None:
        return True
    return recorded is not None and hashlib.sha256(current).hexdigest() != recorded


def _missing_folders(out_dir: Path, paths: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """(folders to make for `paths`, outermost first; paths where something other than a
    folder stands in the way of one)."""
    missing: list[str] = []
    in_the_way: list[str] = []
    seen: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder in seen:
                continue
            seen.add(folder)
            on_disk = _lstat(out_dir / folder)
            if on_disk is None:
                missing.append(folder)
            elif not (stat.S_ISDIR(on_disk.st_mode) or stat.S_ISLNK(on_disk.st_mode)):
                in_the_way.append(folder)  # a link is judged by where it leads (_refuse)
    return missing, in_the_way


def _refuse(out_dir: Path, foreign: list[str], edited: list[str], touched: list[str]) -> None:
    """Raise one UserError naming every file the build must not write, if any."""
    root = out_dir.resolve()
    known: dict[Path, bool] = {}
    problems = [Problem("is not a file mpforge created, and the build would write there", file=str(out_dir / p),
                        hint="mpforge never replaces a file it did not create: move it away, or build into a "
                             "folder of its own") for p in foreign]
    problems += [Problem("was edited since mpforge generated it", file=str(out_dir / p),
                         hint="'mpforge build --force' overwrites (or removes) it; to keep the change, make it in "
                              "a template override instead ('mpforge templates eject NAME' copies a template into "
                              "the project's templates/ folder)") for p in edited]
    problems += [Problem("leads out of the output folder through a link", file=str(out_dir / p),
                         hint="replace the linked folder inside the output with a real one")
                 for p in touched if not inside(root, (out_dir / p).parent, known)]
    if problems:
        raise WriteRefused(problems)
