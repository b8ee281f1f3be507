"""The library's entry points for building and checking a project, used by the CLI,
batch builds and `mpforge dev` alike (so none of them decides anything on its own).

Light to import: `build` decides first whether anything changed since the last build
(a no-op build reads only file stats and the spec's bytes), and loads the pipeline only
when there is work to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .build_cache import DEFAULT_OUTPUT, record, skip_if_unchanged
from .commit import recover
from .errors import Problem, UserError
from .options import PluginOptions
from .output_folder import output_lock, refuse_unsafe_output
from .spec_file import find_spec
from .write import WriteResult, write_locked

if TYPE_CHECKING:
    from .pipeline import Prepared
    from .session import BuildSession

DEFAULT_PREVIEW = "preview"


def default_output(spec_path: Path) -> Path:
    """Where a build goes without -o: dist/ beside the spec."""
    return spec_path.parent / DEFAULT_OUTPUT


def default_preview_output(spec_path: Path) -> Path:
    """Where `mpforge preview` writes without -o: preview/ beside the spec."""
    return spec_path.parent / DEFAULT_PREVIEW


@dataclass
class BuildOutcome:
    """What `build` did: `prepared` is None when nothing had changed (`skipped`)."""

    out_dir: Path
    result: WriteResult
    warnings: list[Problem]
    prepared: Prepared | None = None

    @property
    def skipped(self) -> bool:
        return self.prepared is None


def build(target: str | Path | None, out_dir: str | Path | None = None, options: PluginOptions | None = None, *,
          force: bool = False, session: BuildSession | None = None,
          overwrite_edits: bool | None = None) -> BuildOutcome:
    """Build into `out_dir` (default: dist/ beside the spec), unless nothing changed
    since the last build there. `force` builds anyway, and overwrites (or removes)
    generated files that were edited by hand instead of refusing; `overwrite_edits`
    decides that separately (`mpforge dev` always builds, but never destroys an edit).

    The folder is checked first (no link, no system folder, not the project's or its
    assets' own); nothing is written into one that fails. Then, under the folder's lock:
    undo what a crashed build left, and stop if the folder is up to date. The pipeline
    runs without the lock; then, under it again, the write, the plugins' after-build hooks
    and the cache record, so a record always describes the build that is in the folder.
    A failing after-build hook leaves no record, so the next build runs it again.
    """
    options = options or PluginOptions()
    spec_path = find_spec(target)
    out = Path(out_dir) if out_dir else default_output(spec_path)
    refuse_unsafe_output(out, spec_path)
    with output_lock(out, create=False) as held:  # not held: no build ever wrote here
        notices = _recovered(out) if held else []
        if held and not force:
            skipped = skip_if_unchanged(spec_path, out, options)
            if skipped:
                result, warnings = skipped
                return BuildOutcome(out, result, notices + warnings)
    from .pipeline import prepare  # here, not above: a skipped build never loads the pipeline

    prepared = prepare(spec_path, options, session)
    refuse_unsafe_output(out, spec_path, prepared.spec.assets_dir)
    with output_lock(out, create=True):
        notices += _recovered(out)
        result = write_locked(prepared.tree, out, overwrite_edits=force if overwrite_edits is None else overwrite_edits)
        prepared.hooks.after_build(result, prepared.spec)
        try:
            record(out, spec_path, prepared.spec.loaded.sha256, prepared.inputs, prepared.tree, prepared.warnings,
                   options, prepared.spec.today.isoformat())
        except OSError:
            pass  # without a cache record the next build is simply a full one
    return BuildOutcome(out, result, notices + prepared.warnings, prepared)


def _recovered(out_dir: Path) -> list[Problem]:
    """Undo what a crashed build left in the folder; a warning saying so if there was any."""
    if not recover(out_dir):
        return []
    return [Problem("a build into this folder had been killed while writing; its changes were undone",
                    file=str(out_dir), severity="warning")]


@dataclass
class CheckReport:
    """What `mpforge check` found: the report printed as text or JSON."""

    ok: bool
    files: int = 0
    pages: int = 0
    problems: list[Problem] = field(default_factory=list)
    external: bool = False  # the third-party tools ran (and, when ok, passed)
    # What to whitelist in the Alipay console: {"web-view": [...], "request": [...]}.
    domains: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "problems": [p.to_dict() for p in self.problems],
                "domains": self.domains}


def check_project(target: str | Path | None, options: PluginOptions | None = None, *, external: bool = False,
                  tools: str | None = None) -> CheckReport:
    """Everything but writing; with `external`, also the third-party checkers over the
    output. A user error becomes a failed report; anything else propagates."""
    from . import review
    from .pipeline import prepare

    try:
        prepared = prepare(target, options)
        report = CheckReport(ok=True, files=len(prepared.tree), pages=len(prepared.plan.pages),
                             problems=list(prepared.warnings), domains=review.domains(prepared.tree))
        if external:
            from .external_check import check_tree, find_tools

            result = check_tree(prepared.tree, find_tools(tools))
            report.ok, report.external = result.ok, True
            report.problems += result.problems
    except UserError as exc:
        return CheckReport(ok=False, problems=list(exc.problems))
    return report
