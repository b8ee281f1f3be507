"""Batch builds: many merchants' specs in one command, in parallel processes.

An agency builds hundreds of merchants in CI. Each spec builds on its own (one bad spec
does not stop the rest) into `<out>/<name>/`, where the name comes from the spec file
(`acme.yaml` -> `acme`) or its folder (`acme/mpforge.yaml` -> `acme`).
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
    """Each target's output folder under `out_root`; two specs may not share one."""
    chosen: dict[str, Path] = {}
    by_name: dict[str, str] = {}
    problems = []
    for target in targets:
        spec = find_spec(target)
        name = spec.parent.name if spec.name in SPEC_FILENAMES else spec.stem
        if name in by_name:
            problems.append(Problem(f"{target} and {by_name[name]} would both build into {out_root / name}",
                                    hint="rename one spec file or folder"))
            continue
        by_name[name] = target
        chosen[target] = out_root / name
    if problems:
        raise UserError(problems)
    return chosen


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
