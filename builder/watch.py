"""Watching the files a build reads, for `mpforge dev`.

`ProjectWatcher` watches (watchdog) the spec, its assets folder, the project's
`templates/` overrides and project-local plugin files, and calls `on_change(paths)`
once per burst of events, in its own thread: changes that arrive while `on_change`
runs are gathered into exactly one more call. Editors' atomic saves (write a temp
file, rename it over the spec) arrive as a move whose destination is the spec;
deletes and renames count as changes too. Events under the output folder are never
changes (writing the output must not trigger another build).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

DEBOUNCE = 0.025  # seconds of quiet that end a burst
MAX_WAIT = 0.25  # a burst never delays a build longer than this
_CHANGE_EVENTS = {"created", "modified", "moved", "deleted", "closed"}
_IGNORED_PARTS = {".git", "__pycache__", ".mypy_cache", ".pytest_cache", "node_modules"}


@dataclass
class WatchPlan:
    """What to watch: exact files, folders whose whole content counts, and where events
    are ignored. `dirs` maps each folder to watch to whether it is watched recursively."""

    files: set[Path] = field(default_factory=set)
    trees: set[Path] = field(default_factory=set)
    ignore: set[Path] = field(default_factory=set)

    def dirs(self) -> dict[Path, bool]:
        wanted: dict[Path, bool] = {}
        for path in self.files:
            parent = _existing(path.parent)
            wanted[parent] = wanted.get(parent, False)
        for tree in self.trees:
            if tree.is_dir():
                wanted[tree] = True
            else:  # not there yet: watch for it to appear
                parent = _existing(tree.parent)
                wanted[parent] = wanted.get(parent, False)
        # A folder inside a recursively watched one needs no watch of its own.
        return {d: r for d, r in wanted.items()
                if not any(o != d and wanted[o] and d.is_relative_to(o) for o in wanted)}

    def relevant(self, path: Path) -> bool:
        if any(path == i or path.is_relative_to(i) for i in self.ignore):
            return False
        if _IGNORED_PARTS.intersection(path.parts) or _is_temp(path.name):
            return False
        return path in self.files or any(path == t or path.is_relative_to(t) for t in self.trees)


def _existing(path: Path) -> Path:
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def _is_temp(name: str) -> bool:
    """Editors' scratch files: vim's swap and 4913 probe, emacs' locks, backups."""
    return (name.startswith(".#") or name.endswith(("~", ".swp", ".swx", ".swo", ".tmp", ".crswap"))
            or name == "4913" or ".mpforge-tmp" in name)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: ProjectWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_EVENTS:
            return  # opened / closed without writing / attrib: our own reads must not count
        paths = [event.src_path, getattr(event, "dest_path", "")]
        self.watcher.notify(Path(p if isinstance(p, str) else p.decode()) for p in paths if p)


class ProjectWatcher:
    def __init__(self, on_change: Callable[[set[Path]], None], *, debounce: float = DEBOUNCE,
                 max_wait: float = MAX_WAIT):
        self.on_change = on_change
        self.debounce = debounce
        self.max_wait = max_wait
        self.plan = WatchPlan()
        self._observer = Observer()
        self._handler = _Handler(self)
        self._watches: dict[tuple[Path, bool], ObservedWatch] = {}
        self._cond = threading.Condition()
        self._pending: set[Path] = set()
        self._first = 0.0
        self._last = 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="mpforge-watch", daemon=True)

    def start(self, plan: WatchPlan) -> None:
        self.set_plan(plan)
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._observer.stop()
        self._observer.join(timeout=5)

    def set_plan(self, plan: WatchPlan) -> None:
        """Watch what `plan` says, adding and removing watches as needed."""
        with self._cond:
            self.plan = plan
            wanted = plan.dirs()
            for key in [k for k in self._watches if (k[0], k[1]) not in wanted.items()]:
                try:
                    self._observer.unschedule(self._watches.pop(key))
                except (KeyError, ValueError):
                    pass
            for directory, recursive in wanted.items():
                if (directory, recursive) not in self._watches:
                    try:
                        self._watches[(directory, recursive)] = self._observer.schedule(
                            self._handler, str(directory), recursive=recursive)
                    except OSError:
                        pass  # vanished meanwhile; the parent's watch will see it come back

    def notify(self, paths: Iterable[Path]) -> None:
        with self._cond:
            relevant = {p for p in paths if self.plan.relevant(p)}
            if not relevant:
                return
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._pending |= relevant
            self._last = now
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                while not self._stopped:
                    now = time.monotonic()
                    due = min(self._last + self.debounce, self._first + self.max_wait)
                    if now >= due:
                        break
                    self._cond.wait(due - now)
                if self._stopped:
                    return
                batch, self._pending = self._pending, set()
            try:
                self.on_change(batch)
            except Exception:  # the callback reports its own failures; never stop watching
                pass
