"""The build pipeline: load -> validate -> plan -> render -> check -> write.

This module is the composition root and the only orchestrator: it registers the core
plugin, runs each stage in order with its part of the BuildSession, and makes every
call to the plugins' hooks between the stages through the typed facade
(`builder.hooks.Hooks`), so one reading of `prepare` shows when each hook runs.
`prepare` runs everything up to the checked FileTree; `builder.api` builds on it
(`build`: the no-op check, the write, the after-build hooks and the cache record;
`check_project`: the report of `mpforge check`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import core_plugin
from .build_cache import Input
from .errors import OutputError, Problem, ProblemList, UserError
from .filetree import FileTree
from .hooks import Hooks, plugin_files
from .load import load_spec
from .model import AppPlan, LoadedSpec, ValidSpec
from .options import PluginOptions
from .plan import plan_app
from .render import make_environment, render_app, template_layers
from .session import BuildSession
from .spec_file import find_spec
from .validate import validate_spec

_SOURCES_OF_THE_PROJECT = ("project", "spec", "command line")


@dataclass
class Prepared:
    """A checked build in memory: what `build` writes and the preview shows."""

    spec: ValidSpec
    plan: AppPlan
    tree: FileTree
    warnings: list[Problem]
    inputs: list[Input]  # everything the build read: the cache checks them, `mpforge dev` watches the local ones
    hooks: Hooks


def load_plugins(options: PluginOptions | None = None, loaded: LoadedSpec | None = None) -> Hooks:
    """The core plugin, installed plugins, the spec's own and the command line's."""
    options = options or PluginOptions()
    return Hooks(core_plugin, extra=options.extra, disabled=options.disabled, spec=loaded)


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


def prepare(target: str | Path | None, options: PluginOptions | None = None,
            session: BuildSession | None = None) -> Prepared:
    """Load, validate, plan, render and check; raise UserError on any problem.

    `session` carries what the previous build in it left for reuse (see
    builder.session); without one, nothing is reused or kept.
    """
    session = session or BuildSession()
    with session.lock, _without_gc_pauses():
        return _prepare(target, options or PluginOptions(), session)


def _prepare(target: str | Path | None, options: PluginOptions, session: BuildSession) -> Prepared:
    loaded = load_spec(find_spec(target), session.load)
    hooks = load_plugins(options, loaded)
    spec = validate_spec(loaded, hooks.block_types, hooks.sections, session.validate, hooks.disabled_owner)
    spec.pages.extend(page for _, page in hooks.pages(spec))
    spec.targets = hooks.reference_targets(spec)
    problems = ProblemList(hooks.validate(spec))
    problems.raise_if_errors()
    spec.warnings = problems.warnings

    plan = plan_app(spec, hooks, session.plan)
    try:
        tree = render_app(plan, make_environment(hooks, spec.root), hooks, session.render)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError([Problem(f"template syntax error: {exc.message}", file=exc.filename or exc.name,
                                 line=exc.lineno)]) from None
    except jinja2.TemplateError as exc:
        raise UserError([Problem(f"template error: {exc}",
                                 hint="check the templates in your project's templates/ folder")]) from None
    checked = ProblemList([*spec.warnings, *hooks.run_checks(tree)])
    checked.raise_if_errors(OutputError)
    return Prepared(spec, plan, tree, checked.warnings, build_inputs(spec, hooks), hooks)


def build_inputs(spec: ValidSpec, hooks: Hooks) -> list[Input]:
    """Every file and folder the build read, marked local when it belongs to the project."""
    source = {name: info.source for name, info in hooks.info.items()}
    source["project"] = "project"
    inputs = [Input(spec.loaded.path.resolve(), tree=False, local=True),
              Input(Path(__file__).resolve().parent, tree=True, local=False)]  # mpforge itself
    if spec.assets_dir is not None:
        inputs.append(Input(spec.assets_dir.resolve(), tree=True, local=True))
    inputs.append(Input(spec.state_dir.resolve(), tree=True, local=True))
    for plugin, folder in template_layers(hooks, spec.root, existing=False):
        inputs.append(Input(folder.resolve(), tree=True, local=source[plugin] in _SOURCES_OF_THE_PROJECT))
    for name, info in hooks.info.items():
        module = hooks.pm.get_plugin(name)
        for path in plugin_files([module]):
            inputs.append(Input(path.resolve(), tree=path.is_dir(), local=info.source in _SOURCES_OF_THE_PROJECT))
    return list(dict.fromkeys(inputs))
