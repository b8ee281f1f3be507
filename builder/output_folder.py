"""The output folder itself: mpforge's own files in it, its lock, and which folders a build
may write into at all.

An output folder may come from anywhere (a zip, a repository, a shared drive), so nothing
in it is trusted: mpforge's own files are opened without following links and without
blocking (a FIFO in place of the manifest must not hang a build), and anything but a
regular file there is refused with its path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import Problem, UserError, WriteRefused

MANIFEST = ".mpforge-manifest.json"  # the files mpforge generated here, with their sha256
CACHE = ".mpforge-cache.json"  # build_cache's record of the last build
LOCK = ".mpforge.lock"
JOURNAL = ".mpforge-journal.json"  # present only while a commit swaps files (see commit.py)
TEMP_PREFIX = ".mpforge-tmp-"  # staging folders and temp files; leftovers of a crash go at the next build
LOCK_TIMEOUT = 30.0
# Top-level folders of Linux and macOS that hold the system or everyone's files; a build
# never writes into one of these itself (a folder inside, like /tmp/shop, is fine).
SYSTEM_FOLDERS = frozenset({
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt", "proc",
    "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var",
    "Applications", "Library", "System", "Users", "Volumes", "cores", "private",
})

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


def kind_of(mode: int) -> str:
    """What a non-regular file is, for messages."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _not_regular(path: Path, what: str) -> WriteRefused:
    return WriteRefused([Problem(f"is {what} where mpforge keeps its own record", file=str(path),
                                 hint="remove it and build again")])


def open_state_file(path: Path, flags: int = os.O_RDONLY) -> int | None:
    """A descriptor of one of mpforge's own files, or None when there is none.

    Never follows a link and never blocks; a link, FIFO, folder or device is refused.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # what O_NOFOLLOW answers for a link
            raise _not_regular(path, "a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _not_regular(path, "a folder") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, kind_of(mode))
    return fd


def read_state_file(path: Path) -> bytes | None:
    """The bytes of one of mpforge's own files (manifest, cache, journal); None if absent."""
    fd = open_state_file(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


@contextmanager
def cannot_write(out_dir: Path) -> Iterator[None]:
    """An OSError (permissions, disk full, ...) becomes a user error naming the file."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or out_dir
        raise UserError([Problem(f"cannot write output: {where}: {exc.strerror}",
                                 hint="nothing was changed; check the folder's permissions and free space")]) from exc


# --- the lock ------------------------------------------------------------------------------


@contextmanager
def output_lock(out_dir: Path, *, create: bool) -> Iterator[bool]:
    """Hold the output folder's lock for the block; yields whether it is held.

    `create=False` takes it only if the lock file exists (a folder without one was never
    written by a build: there is nothing to skip or put back). `create=True` makes the
    folder and the lock file as needed; if the block then fails, what this call created
    goes again, so a refused build leaves no trace.
    """
    made = _make_folder(out_dir) if create else []
    path = out_dir / LOCK
    try:
        with cannot_write(out_dir):
            held = _acquire(path, out_dir, create)
    except BaseException:
        _remove_empty(made)
        raise
    if held is None:
        yield False
        return
    fd, created = held
    try:
        yield True
    except BaseException:
        if created:
            try:
                os.unlink(path)  # safe under the lock: a waiting build notices and retries (_acquire)
            except OSError:
                pass
        _remove_empty(made)
        raise
    finally:
        os.close(fd)  # releases the lock


def _acquire(path: Path, out_dir: Path, create: bool) -> tuple[int, bool] | None:
    """(descriptor holding the lock, whether this call created the file), or None when
    `create` is false and there is no lock file."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        created = False
        fd = open_state_file(path)
        if fd is None:
            if not create:
                return None
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                created = True
            except FileExistsError:
                continue  # another build made it just now
        try:
            _wait_for(fd, out_dir, deadline)
            if _same_file(fd, path):
                return fd, created
        except BaseException:
            os.close(fd)
            raise
        # The file was removed (by a refused build that had created it) or replaced while
        # we waited: lock the one that is there now.
        os.close(fd)


def _wait_for(fd: int, out_dir: Path, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise WriteRefused([Problem(f"another mpforge build is writing to {out_dir}",
                                         hint="wait for it to finish, or build into another folder")]) from None
            time.sleep(0.05)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _make_folder(out_dir: Path) -> list[Path]:
    """Make `out_dir` and its missing parents; return those made, outermost first."""
    missing = []
    folder = out_dir
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    with cannot_write(out_dir):
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue  # made by someone else meanwhile: not ours to remove
            made.append(folder)
    return made


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: it holds something now


# --- folders a build must not write into ----------------------------------------------------------


def refuse_unsafe_output(out_dir: Path, spec_path: Path, assets_dir: Path | None = None) -> None:
    """Raise a UserError, before anything is written, if `out_dir` is a link, a system
    folder (/, /usr, /tmp, ..., the home folder), the project folder or one holding it,
    or the assets folder or one inside it."""
    where = str(out_dir)
    if out_dir.is_symlink():
        raise WriteRefused([Problem(f"the output folder is a symbolic link to {os.readlink(out_dir)}", file=where,
                                 hint="give -o the real folder; mpforge does not write through links")])
    out = out_dir.resolve()
    project = spec_path.resolve().parent
    home = Path(os.path.expanduser("~")).resolve()
    problem = None
    if out == Path(out.anchor) or out.parent == Path(out.anchor) and out.name in SYSTEM_FOLDERS or out == home:
        problem = "the output folder is a system folder (the root, a folder like /usr or /tmp, or your home folder)"
    elif out == project or out in project.parents:
        problem = f"the output folder holds the project's own files ({spec_path.name} and its sources)"
    elif assets_dir is not None and (out == assets_dir.resolve() or assets_dir.resolve() in out.parents):
        problem = f"the output folder is inside the spec's assets folder ({assets_dir})"
    if problem:
        hint = "build into a folder of its own, such as dist/ beside the spec (the default)"
        raise WriteRefused([Problem(problem, file=where, hint=hint)])


def plain_relative(path: str) -> bool:
    """Whether `path` (from a file in the folder) is a plain relative POSIX path: no '..',
    no absolute path, no drive, no backslash; only such paths are acted on."""
    parts = path.split("/")
    return (bool(path) and "\\" not in path and "\x00" not in path and ":" not in parts[0]
            and all(part not in ("", ".", "..") for part in parts))


def inside(root: Path, folder: Path, known: dict[Path, bool]) -> bool:
    """Whether `folder`, links resolved, is `root` (resolved) or inside it; `known`
    remembers folders already asked about (a build writes many files in few folders)."""
    if folder not in known:
        resolved = folder.resolve()
        known[folder] = resolved == root or root in resolved.parents
    return known[folder]
