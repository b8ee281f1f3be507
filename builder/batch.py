"""Batch builds: many merchants' specs in one command, in parallel processes.

An agency builds hundreds of merchants in CI. Each spec builds on its own (one bad spec
does not stop the rest) into `<out>/<name>/`, where the name comes from the spec file
(`acme.yaml` -> `acme`) or its folder (`acme/mpforge.yaml` -> `acme`, `.` -> the current
folder's name), and is always one plain folder directly inside `<out>`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .api import build
from .errors import PluginError, Problem, UserError
from .options import PluginOptions
from .spec_file import SPEC_FILENAMES, find_spec


@dataclass
class Outcome:
    """What became of one spec; plain data so it crosses process boundaries."""

    target: str
    out_dir: str
    problems: list[Problem] = field(default_factory=list)
    internal_error: str | None = None  # a bug in mpforge or a plugin (exit 2)
    written: int = 0
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return self.internal_error is None and not any(p.severity == "error" for p in self.problems)


def output_dirs(targets: list[str], out_root: Path) -> dict[str, Path]:
    """Each target's output folder: a folder of its own directly inside `out_root`.

    Two targets may not share one; names that differ only in case count as one, since
    they are one folder on macOS's default file system.
    """
    chosen: dict[str, Path] = {}
    by_name: dict[str, str] = {}
    problems = []
    root = out_root.resolve()
    for target in targets:
        name = _folder_name(find_spec(target))
        if name is None:
            problems.append(Problem(f"cannot name an output folder after {target}",
                                    hint="give the spec file or its folder a plain name (no slashes or "
                                         "backslashes)"))
            continue
        if name.casefold() in by_name:
            problems.append(Problem(f"{target} and {by_name[name.casefold()]} would both build into "
                                    f"{out_root / name}", hint="rename one spec file or folder"))
            continue
        by_name[name.casefold()] = target
        folder = out_root / name
        # An existing link there would take the build elsewhere.
        if folder.resolve().parent != root:
            problems.append(Problem(f"{folder} leads outside {out_root}",
                                    hint="remove the link, or choose another -o"))
            continue
        chosen[target] = folder
    if problems:
        raise UserError(problems)
    return chosen


def _folder_name(spec: Path) -> str | None:
    """The name a spec builds under: its file's stem (`acme.yaml` -> `acme`), or its
    folder's name for `mpforge.yaml` and a stem that is no folder name ('..yaml').
    The folder is resolved: as typed, `.`, `..` or a bare `mpforge.yaml` has no name
    (the spec file itself is not: a linked spec builds under its link's folder)."""
    if spec.name not in SPEC_FILENAMES and _plain_name(spec.stem):
        return spec.stem
    folder = spec.parent.resolve().name
    return folder if _plain_name(folder) else None


def _plain_name(name: str) -> bool:
    """A single, ordinary path segment: nothing that would leave the output folder or
    mean another folder on another system."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def build_one(target: str, out_dir: str, options: PluginOptions, force: bool = False) -> Outcome:
    """Build one spec, turning every failure into data instead of an exception."""
    outcome = Outcome(target, out_dir)
    try:
        built = build(target, out_dir, options, force=force)
    except UserError as exc:
        outcome.problems = list(exc.problems)
        return outcome
    except Exception as exc:  # reported per spec; the batch goes on
        outcome.internal_error = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.problems = list(built.warnings)
    outcome.written, outcome.unchanged = len(built.result.written), len(built.result.unchanged)
    return outcome


def run_batch(targets: list[str], out_root: Path, jobs: int, options: PluginOptions, force: bool = False,
              on_done: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Build every target, `jobs` at a time; outcomes come back in the targets' order."""
    dirs = output_dirs(targets, out_root)
    if jobs <= 1:
        outcomes = []
        for target in targets:
            outcomes.append(build_one(target, str(dirs[target]), options, force))
            on_done(outcomes[-1])
        return outcomes
    # fork: the workers inherit the imported pipeline instead of importing it again.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures: list[Future[Outcome]] = [pool.submit(build_one, t, str(dirs[t]), options, force) for t in targets]
        for future in as_completed(futures):
            on_done(future.result())
        return [future.result() for future in futures]
