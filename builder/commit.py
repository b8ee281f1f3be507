"""The commit: a build's changes go into the output folder all at once, or not at all,
even if the process is killed.

1. Stage: every new file is written into a fresh staging folder inside the output folder
   (`.mpforge-tmp-XXXXXXXX`, made by mkdtemp: private, unpredictably named, on the same
   file system), never through a link and never over an existing file.
2. Journal: `.mpforge-journal.json` lists every file the swap will touch and every folder
   it will make; it is fsynced, and its folder too, before the first rename.
3. Swap: each file that is replaced or removed is renamed into the staging folder, and
   each new one renamed into place; folders left empty go.
4. Commit point: the journal is deleted. Then the staging folder, now the old files, goes.

A failure, Ctrl-C, SIGTERM or SIGHUP before the commit point puts everything back at once;
the signals are held off while files move, so none lands between two renames. A crash
(kill -9, the OOM killer) leaves the journal behind, and `recover`, which every build runs
under the folder's lock before it looks at anything else, rolls the swap back from it. So
by the time the next build reads the folder it is wholly the old build or wholly the new.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Problem, UserError
from .output_folder import JOURNAL, TEMP_PREFIX, cannot_write, inside, plain_relative, read_state_file

NEW, REPLACE, REMOVE = "new", "replace", "remove"


@dataclass(frozen=True)
class Journal:
    """What a swap touches, in order. Entry k's new content is staged as `k.new` and the
    file it replaces or removes is kept as `k.old`, both in the staging folder."""

    staging: str  # the staging folder's name, in the output folder
    entries: list[tuple[str, str]]  # (path, NEW | REPLACE | REMOVE)
    dirs: list[str]  # folders the swap makes, outermost first

    def to_json(self) -> str:
        return json.dumps({"generator": "mpforge", "staging": self.staging, "entries": self.entries,
                           "dirs": self.dirs})

    @classmethod
    def parse(cls, raw: bytes, out_dir: Path) -> Journal:
        """A journal read back from the folder, which may come from anywhere: every path
        must be a plain relative one that stays inside the folder."""
        where = str(out_dir / JOURNAL)
        try:
            data: Any = json.loads(raw)
            journal = cls(data["staging"], [(path, kind) for path, kind in data["entries"]], list(data["dirs"]))
        except (ValueError, KeyError, TypeError):
            journal = None
        root = out_dir.resolve()
        known: dict[Path, bool] = {}
        if journal is None or not (
                isinstance(journal.staging, str) and journal.staging.startswith(TEMP_PREFIX)
                and plain_relative(journal.staging) and "/" not in journal.staging
                and all(isinstance(p, str) and plain_relative(p) and kind in (NEW, REPLACE, REMOVE)
                        and inside(root, (out_dir / p).parent, known) for p, kind in journal.entries)
                and all(isinstance(d, str) and plain_relative(d) and inside(root, (out_dir / d).parent, known)
                        for d in journal.dirs)):
            raise UserError([Problem("is not a journal mpforge wrote, so the interrupted build cannot be undone",
                                     file=where, hint="delete the output folder and build again")])
        try:
            is_folder = stat.S_ISDIR(os.lstat(out_dir / journal.staging).st_mode)
        except FileNotFoundError:
            is_folder = False
        if not is_folder:
            raise UserError([Problem(f"the interrupted build's staging folder {journal.staging} is missing, so it "
                                     "cannot be undone", file=where, hint="delete the output folder and build again")])
        return journal


def commit(out_dir: Path, changes: dict[str, bytes], removed: list[str], dirs: list[str]) -> None:
    """Put `changes` (path -> bytes) in place and move `removed` away, making `dirs`
    first; all or nothing. Call with the folder's lock held."""
    entries = [(path, REPLACE if os.path.lexists(out_dir / path) else NEW) for path in changes]
    entries += [(path, REMOVE) for path in removed]
    journaled = False
    with _signals_held() as interrupted:
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out_dir))  # made once signals are held
        journal = Journal(staging.name, entries, dirs)
        try:
            for k, (path, _) in enumerate(entries[:len(changes)]):
                if interrupted():
                    raise KeyboardInterrupt
                with open(staging / f"{k}.new", "xb", opener=_no_follow) as handle:
                    handle.write(changes[path])
            journaled = True  # from here on the journal may exist, and the undo reads the staging folder
            _write_journal(out_dir, staging, journal)
            _swap(out_dir, journal)
            if interrupted():
                raise KeyboardInterrupt
        except BaseException:
            if journaled:
                _undo(out_dir, journal)  # if this fails, the journal stays for the next build to finish
                (out_dir / JOURNAL).unlink(missing_ok=True)
            _discard(staging)
            raise
        os.unlink(out_dir / JOURNAL)  # the commit point
        _fsync_folder(out_dir)
        _discard(staging)
    if interrupted():
        raise KeyboardInterrupt  # it came after the commit point: the new output is complete


def recover(out_dir: Path) -> bool:
    """Undo a swap a crash interrupted (True if there was one) and delete whatever a crash
    left staged. Call with the folder's lock held, before reading anything else in it."""
    with cannot_write(out_dir):
        raw = read_state_file(out_dir / JOURNAL)
        if raw is not None:
            _undo(out_dir, Journal.parse(raw, out_dir))
            os.unlink(out_dir / JOURNAL)
            _fsync_folder(out_dir)
        with os.scandir(out_dir) as entries:
            leftovers = [Path(entry.path) for entry in entries if entry.name.startswith(TEMP_PREFIX)]
        for leftover in leftovers:
            _discard(leftover)
    return raw is not None


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)


def _write_journal(out_dir: Path, staging: Path, journal: Journal) -> None:
    temp = staging / "journal"
    with open(temp, "x", encoding="utf-8", opener=_no_follow) as handle:
        handle.write(journal.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, out_dir / JOURNAL)
    _fsync_folder(out_dir)  # the journal's name is on disk before any file moves


def _swap(out_dir: Path, journal: Journal) -> None:
    staging = out_dir / journal.staging
    for folder in journal.dirs:
        (out_dir / folder).mkdir()
    for k, (path, kind) in enumerate(journal.entries):
        target = out_dir / path
        if kind != NEW:
            os.replace(target, staging / f"{k}.old")
        if kind != REMOVE:
            os.replace(staging / f"{k}.new", target)
    for path, kind in journal.entries:
        if kind == REMOVE:
            _remove_empty_folders((out_dir / path).parent, out_dir)


def _undo(out_dir: Path, journal: Journal) -> None:
    """Put back every file the swap moved, last first; best effort to the end.

    Each entry's state tells how far its swap got: `k.old` present means the old file was
    moved away (put it back); a new file whose `k.new` is gone was moved into place
    (delete it). A step that fails does not stop the others; the failures are raised
    together once everything else is back.
    """
    staging = out_dir / journal.staging
    failures: list[str] = []
    for k, (path, kind) in reversed(list(enumerate(journal.entries))):
        target, old = out_dir / path, staging / f"{k}.old"
        try:
            if os.path.lexists(old):
                target.parent.mkdir(parents=True, exist_ok=True)  # its folder may have gone as it emptied
                os.replace(old, target)
            elif kind == NEW and not os.path.lexists(staging / f"{k}.new") and os.path.lexists(target):
                os.unlink(target)
        except OSError as exc:
            kept = f" (its previous content is in {old})" if kind != NEW else ""
            failures.append(f"{target}: {exc.strerror}{kept}")
    for folder in reversed(journal.dirs):
        try:
            (out_dir / folder).rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                failures.append(f"{out_dir / folder}: {exc.strerror}")
    if failures:
        raise UserError([Problem(f"could not restore the previous output: {f}",
                                 hint="writing failed and undoing it failed too; the next build tries again")
                         for f in failures])


def _remove_empty_folders(folder: Path, out_dir: Path) -> None:
    while folder != out_dir:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _discard(path: Path) -> None:
    """Delete a staging folder or temp file; what cannot go now goes at the next build."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def _fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a rename, an unlink) durable, where the file system can."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise  # some network and FUSE file systems cannot sync a folder: that is no failure
    finally:
        os.close(fd)


@contextmanager
def _signals_held() -> Iterator[Callable[[], bool]]:
    """Hold off SIGINT, SIGTERM and SIGHUP; yields a function telling whether one came.

    Only a signal whose handling is the default is held: a program that handles it
    itself (mpforge dev) keeps its handler. Only the main thread can handle signals;
    elsewhere (a dev server's worker thread) this changes nothing and reports none.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                signal.SIGHUP: signal.SIG_DFL}
    previous = {}
    try:
        for signum, default in defaults.items():
            if signal.getsignal(signum) == default:
                previous[signum] = signal.signal(signum, lambda signum, frame: received.append(signum))
        yield lambda: bool(received)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
