"""The build pipeline: load -> validate -> plan -> render -> check -> write.

Each stage lives in its own module and hands plain data to the next. `prepare` runs
everything up to the checked FileTree (used by `check`, `build` and the preview);
`build` adds the write.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .build_cache import DEFAULT_OUTPUT, record
from .errors import OutputError, PluginError, Problem, ProblemList, UserError
from .filetree import FileTree
from .load import find_spec, load_spec
from .options import PluginOptions
from .plan import AppPlan, plan_app
from .plugin_manager import Plugins
from .render import make_environment, render_app
from .validate import ValidSpec, validate_spec
from .write import WriteResult, write_tree


@dataclass
class Prepared:
    spec: ValidSpec
    plan: AppPlan
    tree: FileTree
    warnings: list[Problem]


@contextmanager
def _without_gc_pauses() -> Iterator[None]:
    """Pause the cyclic garbage collector for one build.

    A build creates hundreds of thousands of objects that all live until it ends (nodes,
    marks, models, page data); the collector kept rescanning them, which was most of the
    load time of a 1000-page spec. What the build leaves behind is collected as usual
    once it is over.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare(target: str | Path | None, options: PluginOptions = PluginOptions()) -> Prepared:
    """Load, validate, plan, render and check; raise UserError on any problem."""
    with _without_gc_pauses():
        return _prepare(target, options)


def _prepare(target: str | Path | None, options: PluginOptions) -> Prepared:
    loaded = load_spec(find_spec(target))
    plugins = Plugins(extra=options.extra, disabled=options.disabled, spec=loaded)
    spec = validate_spec(loaded, plugins)
    plan = plan_app(spec)
    try:
        tree = render_app(plan, make_environment(plugins, spec.root))
    except jinja2.TemplateSyntaxError as exc:
        raise UserError([Problem(f"template syntax error: {exc.message}", file=exc.filename or exc.name,
                                 line=exc.lineno)]) from None
    except jinja2.TemplateError as exc:
        raise UserError([Problem(f"template error: {exc}",
                                 hint="check the templates in your project's templates/ folder")]) from None
    problems = ProblemList(list(spec.warnings))
    for plugin, rule in plugins.checks:
        try:
            found = rule(tree)
        except Exception as exc:
            raise PluginError(plugin, "mpforge_checks", exc) from exc
        for problem in found:
            problems.add(problem)
    problems.raise_if_errors(OutputError)
    return Prepared(spec, plan, tree, problems.warnings)


def default_output(spec: ValidSpec) -> Path:
    return spec.root / DEFAULT_OUTPUT


def build(target: str | Path | None, out_dir: str | Path | None = None,
          options: PluginOptions = PluginOptions()) -> tuple[Prepared, WriteResult]:
    """Prepare, then write the tree to `out_dir` (default: `dist/` beside the spec)."""
    prepared = prepare(target, options)
    out = Path(out_dir) if out_dir else default_output(prepared.spec)
    result = write_tree(prepared.tree, out)
    try:
        record(prepared, out, options)
    except OSError:
        pass  # without a cache record the next build is simply a full one
    prepared.spec.plugins.call("mpforge_after_build", result=result, spec=prepared.spec)
    return prepared, result
