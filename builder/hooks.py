"""Loading plugins, and the typed facade through which the pipeline calls their hooks.

Plugins come from four places, in this order: the core (given by the pipeline, which is
the composition root), installed packages (entry-point group `mpforge`, imported one by
one so a broken one is named), the spec's `plugins:` list (a `.py` file beside the spec
or an importable module), and `--plugin MODULE` on the command line. `--disable-plugin`
skips one by name. A spec's `requires:` names plugins with version ranges.

Every plugin is checked when it is registered: a function that looks like a hook but is
not one (a typo), a hook without `@hookimpl`, an argument the hook does not pass, or a
wrapper (`wrapper=True` / `hookwrapper=True`, which mpforge does not support) is a
located error at the plugin's file. Each hook has one method here; it calls the
implementations one by one, so that an exception or a result of the wrong type is
pinned to the plugin, its file and the hook.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from . import __version__, hookspecs
from .errors import PluginError, PluginLoadError, Problem, SpecError, UserError, did_you_mean
from .filetree import FileTree
from .model import AppPlan, AppScript, Block, BlockType, LoadedSpec, PagePlan, Render, ValidSpec
from .spec_models import CatalogueProduct, Page
from .write import WriteResult

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:  # the back end's types: imported by the serve hooks' methods when called
    from starlette.routing import BaseRoute, Route

    from .serve.business_events import BusinessEvent
    from .serve.jobs import PeriodicTask, TaskContext
    from .serve.openapi import Endpoint
    from .serve.sandbox_methods import SandboxMethod
    from .serve.storage import AlipayUser, Storage

ENTRY_POINT_GROUP = "mpforge"
HOOK_NAMES = frozenset(name for name in dir(hookspecs) if name.startswith("mpforge_"))
Check = Callable[[FileTree], list[Problem]]
Locate = Callable[[str, str | None], Problem]


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    source: str  # "core", "entry point", "spec", "command line"
    module: str
    file: Path | None  # the module's file (a package's __init__.py), when it has one


def is_path(target: str) -> bool:
    """Whether a `plugins:` / `--plugin` entry names a file rather than a module."""
    return target.endswith(".py") or "/" in target


class Hooks:
    """The loaded plugins and one typed method per hook, for one build."""

    def __init__(self, core: ModuleType, *, extra: Sequence[str] = (), disabled: Sequence[str] = (),
                 spec: LoadedSpec | None = None):
        if "core" in disabled:
            raise UserError([Problem("the core plugin cannot be disabled")])
        self.pm = pluggy.PluginManager("mpforge")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._skipped: set[str] = set()  # disabled plugins that were found
        self._targets: set[str] = set()  # local plugins loaded, by resolved path or module name
        self._add(core, "core", __version__, "core")
        self._load_entry_points(disabled)
        if spec is not None:
            self._load_from_spec(spec, disabled)
        for target in extra:
            self._load(target, Path.cwd(), "command line", disabled, None)
        self._check_disabled(disabled)
        if spec is not None:
            self._check_requires(spec)

    # --- loading ----------------------------------------------------------------------

    def _add(self, module: ModuleType, name: str, version: str, source: str, locate: Locate | None = None) -> None:
        if self.pm.is_registered(module):
            return  # e.g. an installed plugin also listed by module name: load it once
        file = _module_file(module)
        if name in self.info:
            first = self.info[name]
            message = (f"two plugins are named '{name}': {first.module} ({first.file or first.source}) and "
                       f"{module.__name__} ({file or source})")
            hint = "rename one: set PLUGIN_NAME in its module"
            # At the spec's entry when the second comes from the spec, else at its name.
            problem = locate(message, hint) if locate else Problem(message, file=str(file) if file else None,
                                                                   line=_name_line(file), hint=hint)
            raise PluginLoadError([problem])
        self._verify(module, name, file)
        self.pm.register(module, name=name)
        self.info[name] = PluginInfo(name, version, source, module.__name__, file)

    def _verify(self, module: ModuleType, name: str, file: Path | None) -> None:
        """Refuse, with the plugin's file and line, what pluggy would accept silently or
        reject with an internal-looking error."""
        problems = []
        for attr in dir(module):
            func = getattr(module, attr, None)
            if not callable(func):
                continue
            opts = getattr(func, "mpforge_impl", None)
            hook = (opts or {}).get("specname") or attr
            where = _where(func, file)
            if opts is None:
                if attr in HOOK_NAMES and getattr(func, "__module__", None) == module.__name__:
                    problems.append(Problem(f"plugin '{name}': {attr} is not marked with @hookimpl, so it is "
                                            "never called", **where,
                                            hint="decorate it: from builder.plugin_api import hookimpl"))
                continue
            if hook not in HOOK_NAMES:
                problems.append(Problem(f"plugin '{name}': unknown hook '{hook}'", **where,
                                        hint=did_you_mean(hook, HOOK_NAMES) or "docs/plugins.md lists the hooks"))
                continue
            if opts.get("wrapper") or opts.get("hookwrapper"):
                problems.append(Problem(f"plugin '{name}': {hook} is a hook wrapper, which mpforge does not support",
                                        **where, hint="drop wrapper=True / hookwrapper=True and return the result"))
                continue
            allowed = getattr(self.pm.hook, hook).spec.argnames
            for arg, param in inspect.signature(func).parameters.items():
                if arg not in allowed and param.default is inspect.Parameter.empty:
                    listing = ", ".join(allowed) or "no arguments"
                    problems.append(Problem(f"plugin '{name}': {hook} has an argument '{arg}' that the hook "
                                            "does not pass", **where,
                                            hint=did_you_mean(arg, allowed) or f"it passes: {listing}"))
        if problems:
            raise PluginLoadError(problems)

    def disabled_owner(self, block_type: str) -> str | None:
        """The disabled plugin that would provide `block_type`, for the message about a
        spec that uses it. Only asked once a spec names an unknown type: it imports the
        disabled installed plugins (without registering them) to read their block types."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name not in self._skipped:
                continue
            try:
                with plugin_output_to_stderr():
                    provide = getattr(entry.load(), "mpforge_block_types", None)
                    names = [bt.name for bt in provide()] if callable(provide) else []
            except Exception:  # a disabled plugin may well be broken: then it names nothing
                continue
            if block_type in names:
                return entry.name
        return None

    def _load_entry_points(self, disabled: Sequence[str]) -> None:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in disabled:
                self._skipped.add(entry.name)
                continue
            if self.pm.has_plugin(entry.name):
                continue  # the same distribution seen twice on sys.path
            module = _load_entry_point(entry)
            # A module's own __version__ wins: first-party plugins share mpforge's distribution.
            version = str(getattr(module, "__version__", None) or (entry.dist.version if entry.dist else "0"))
            self._add(module, entry.name, version, "entry point")

    def _load_from_spec(self, spec: LoadedSpec, disabled: Sequence[str]) -> None:
        entries = spec.data.get("plugins") if isinstance(spec.data, dict) else None
        if entries is None:
            return
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise SpecError([spec.problem(("plugins",), "'plugins' must be a list of module names or .py paths",
                                          hint="e.g. plugins: [./my_plugin.py, agency_blocks]")])
        for i, target in enumerate(entries):
            def locate(message: str, hint: str | None, i: int = i) -> Problem:
                return spec.problem(("plugins", i), message, hint=hint)
            self._load(target, spec.root, "spec", disabled, locate)

    def _load(self, target: str, root: Path, source: str, disabled: Sequence[str], locate: Locate | None) -> None:
        def unlocated(message: str, hint: str | None) -> Problem:
            return Problem(message, hint=hint)

        where = locate or unlocated
        key = str((root / target).resolve()) if is_path(target) else target
        if key in self._targets:
            return  # listed in the spec and on the command line: load it once
        self._targets.add(key)
        name = target.rsplit("/", 1)[-1].removesuffix(".py").rsplit(".", 1)[-1]
        try:
            with plugin_output_to_stderr():
                module = _import(target, root)
        except SystemExit as exc:  # not the user's mistake, and not a reason to end mpforge
            spot = where("", None)  # for its location only
            raise PluginError(name, "its import", exc, f"{spot.location()}: {spot.path}" if spot.file else "",
                              str((root / target).resolve()) if is_path(target) else None) from exc
        except FileNotFoundError:
            raise SpecError([where(f"plugin file not found: {target}", None)]) from None
        except ModuleNotFoundError as exc:
            raise SpecError([where(f"cannot import plugin '{target}': {exc}",
                                   "install it, or give a path like ./my_plugin.py")]) from None
        except Exception as exc:  # the plugin's own code failed while importing
            raise SpecError([where(f"plugin '{target}' failed to import: {type(exc).__name__}: {exc}",
                                   "rerun with --traceback")]) from exc
        name = getattr(module, "PLUGIN_NAME", None) or name
        if name in disabled:
            self._skipped.add(name)
            return
        self._add(module, name, str(getattr(module, "__version__", "0")), source, locate)

    def _check_disabled(self, disabled: Sequence[str]) -> None:
        known = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(self.info) | self._skipped
        for name in disabled:
            if name not in known:
                raise UserError([Problem(f"--disable-plugin: no plugin named '{name}'",
                                         hint=did_you_mean(name, known) or f"plugins: {', '.join(sorted(known))}")])

    def _check_requires(self, spec: LoadedSpec) -> None:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion, Version

        requires = spec.data.get("requires") if isinstance(spec.data, dict) else None
        if requires is None:
            return
        if not isinstance(requires, dict):
            raise SpecError([spec.problem(("requires",), "'requires' must map plugin names to version ranges",
                                          hint="e.g. requires: {coupon: '>=1.0'}")])
        problems = []
        for name, wanted in requires.items():
            where = ("requires", name)
            try:
                specifier = SpecifierSet(str(wanted))
            except InvalidSpecifier:
                problems.append(spec.problem(where, f"invalid version range {wanted!r}", hint="e.g. '>=1.0,<2'"))
                continue
            info = self.info.get(name)
            if info is None:
                state = "disabled" if name in self._skipped else "not installed"
                problems.append(spec.problem(where, f"the spec requires plugin '{name}' ({wanted}), which is {state}",
                                             hint=f"install the package that provides the '{name}' plugin "
                                                  f"(entry-point group '{ENTRY_POINT_GROUP}') or list it under "
                                                  "'plugins'"))
                continue
            try:
                ok = Version(info.version) in specifier
            except InvalidVersion:
                ok = False
            if not ok:
                problems.append(spec.problem(where, f"plugin '{name}' is version {info.version}, the spec requires "
                                                    f"{wanted}", hint=f"upgrade the package that provides '{name}'"))
        if problems:
            raise SpecError(problems)

    # --- what is loaded ---------------------------------------------------------------

    def modules(self) -> list[object]:
        """The plugin modules, in registration order."""
        return [self.pm.get_plugin(name) for name in self.info]

    def hooks_of(self, name: str) -> list[str]:
        """The hooks plugin `name` implements."""
        return sorted(caller.name for caller in self.pm.get_hookcallers(self.pm.get_plugin(name)) or [])

    def _file(self, plugin: str) -> str | None:
        info = self.info.get(plugin)
        return str(info.file) if info and info.file else None

    def _failure(self, plugin: str, hook: str, exc: BaseException, where: str = "") -> PluginError:
        return PluginError(plugin, hook, exc, where, self._file(plugin))

    def _wrong_result(self, plugin: str, hook: str, value: Any, expected: str) -> PluginError:
        return self._failure(plugin, hook, TypeError(f"returned {_describe(value)}, expected {expected}"))

    def site(self, plugin: str, hook: str) -> dict[str, Any]:
        """The file and line of `plugin`'s implementation of `hook`, to locate a problem there."""
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin_name == plugin:
                return _where(impl.function, self.info[plugin].file)
        return {"file": self._file(plugin)}

    def _claim(self, found: dict[str, tuple[str, Any]], key: str, plugin: str, value: Any, what: str,
               hook: str) -> None:
        """Record that `plugin` defines `key` (in `hook`); two plugins defining one key is
        an error, located at the second one's hook and naming the first one's file."""
        if key in found:
            first = found[key][0]
            raise UserError([Problem(f"{what} '{key}' is defined by both plugin '{first}' ({self._file(first)}) and "
                                     f"plugin '{plugin}'", **self.site(plugin, hook),
                                     hint=f"leave one out with --disable-plugin {plugin} or {first}")])
        found[key] = (plugin, value)

    def block_failure(self, block_type: str, exc: BaseException, where: str = "") -> PluginError:
        """The error for a block whose page_data failed, naming the block's plugin."""
        return self._failure(self.block_owners[block_type], f"page_data of block '{block_type}'", exc, where)

    # --- calling hooks ----------------------------------------------------------------

    def _call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call `hook` on every plugin (pluggy's order); (plugin name, result) pairs of
        the results that are not None."""
        results = []
        with plugin_output_to_stderr():
            for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
                try:
                    result = impl.function(*(kwargs[name] for name in impl.argnames))
                except UserError:
                    raise
                except (Exception, SystemExit) as exc:  # sys.exit() in a plugin would end mpforge, maybe with 0
                    raise self._failure(impl.plugin_name, hook, exc) from exc
                if result is not None:
                    results.append((impl.plugin_name, result))
        return results

    def _lists(self, hook: str, item: type | tuple[type, ...], expected: str,
               **kwargs: Any) -> list[tuple[str, Any]]:
        """(plugin, item) for every item of every plugin's list result, type-checked."""
        found: list[tuple[str, Any]] = []
        for plugin, result in self._call(hook, **kwargs):
            if not isinstance(result, (list, tuple)) or not all(isinstance(x, item) for x in result):
                raise self._wrong_result(plugin, hook, result, expected)
            found.extend((plugin, x) for x in result)
        return found

    @cached_property
    def _blocks(self) -> dict[str, tuple[str, BlockType]]:
        found: dict[str, tuple[str, BlockType]] = {}
        for plugin, block_type in self._lists("mpforge_block_types", BlockType, "a list of BlockType"):
            if not (isinstance(block_type.model, type) and issubclass(block_type.model, Block)):
                raise self._wrong_result(plugin, "mpforge_block_types", block_type.model,
                                         f"a Block subclass as the model of block type '{block_type.name}'")
            self._claim(found, block_type.name, plugin, block_type, "block type", "mpforge_block_types")
        return found

    @cached_property
    def block_owners(self) -> dict[str, str]:
        """Block type name -> name of the plugin that registered it."""
        return {name: owner for name, (owner, _) in self._blocks.items()}

    @cached_property
    def block_types(self) -> dict[str, BlockType]:
        return {name: block_type for name, (_, block_type) in self._blocks.items()}

    @cached_property
    def _sections(self) -> dict[str, tuple[str, type[BaseModel]]]:
        found: dict[str, tuple[str, type[BaseModel]]] = {}
        for plugin, sections in self._call("mpforge_spec_sections"):
            if not isinstance(sections, dict) or not all(
                    isinstance(k, str) and isinstance(m, type) and issubclass(m, BaseModel)
                    for k, m in sections.items()):
                raise self._wrong_result(plugin, "mpforge_spec_sections", sections,
                                         "a dict of section key to pydantic model class")
            for key, model in sections.items():
                self._claim(found, key, plugin, model, "spec section", "mpforge_spec_sections")
        return found

    @cached_property
    def section_owners(self) -> dict[str, str]:
        return {key: owner for key, (owner, _) in self._sections.items()}

    @cached_property
    def sections(self) -> dict[str, type[BaseModel]]:
        return {key: model for key, (_, model) in self._sections.items()}

    @cached_property
    def template_dirs(self) -> list[tuple[str, Path]]:
        """(plugin, folder) pairs; pluggy calls the core (registered first) last, so it ends last."""
        found = self._lists("mpforge_template_dirs", (str, Path), "a list of folders (str or Path)")
        return [(plugin, Path(folder)) for plugin, folder in found]

    def pages(self, spec: ValidSpec) -> list[tuple[str, Page]]:
        """(plugin, page) for every page plugins add."""
        return self._lists("mpforge_pages", Page, "a list of Page", spec=spec)

    def reference_targets(self, spec: ValidSpec) -> dict[str, list[str]]:
        targets: dict[str, list[str]] = {}
        for plugin, result in self._call("mpforge_reference_targets", spec=spec):
            if not isinstance(result, dict) or not all(
                    isinstance(kind, str) and isinstance(ids, (list, tuple)) and all(isinstance(i, str) for i in ids)
                    for kind, ids in result.items()):
                raise self._wrong_result(plugin, "mpforge_reference_targets", result,
                                         "a dict of reference kind to a list of ids")
            for kind, ids in result.items():
                targets.setdefault(kind, []).extend(ids)
        return targets

    def validate(self, spec: ValidSpec) -> list[Problem]:
        return [problem for _, problem in self._lists("mpforge_validate", Problem, "a list of Problem", spec=spec)]

    def app_json(self, app_json: dict[str, Any], mini_project: dict[str, Any], spec: ValidSpec) -> None:
        self._call("mpforge_app_json", app_json=app_json, mini_project=mini_project, spec=spec)

    def page_json(self, page_json: dict[str, Any], page: PagePlan, spec: ValidSpec) -> None:
        self._call("mpforge_page_json", page_json=page_json, page=page, spec=spec)

    def app_scripts(self, spec: ValidSpec, render: Render) -> list[AppScript]:
        scripts = []
        for plugin, script in self._call("mpforge_app_script", spec=spec, render=render):
            if not isinstance(script, AppScript):
                raise self._wrong_result(plugin, "mpforge_app_script", script, "an AppScript")
            scripts.append(script)
        return scripts

    def services(self, plan: AppPlan, spec: ValidSpec, render: Render) -> list[tuple[str, str, str | bytes]]:
        """(plugin, output path, content) of every app-level file plugins contribute."""
        files: list[tuple[str, str, str | bytes]] = []
        for plugin, result in self._call("mpforge_services", plan=plan, spec=spec, render=render):
            if not isinstance(result, dict) or not all(
                    isinstance(k, str) and isinstance(v, (str, bytes)) for k, v in result.items()):
                raise self._wrong_result(plugin, "mpforge_services", result, "a dict of output path to text")
            files.extend((plugin, path, content) for path, content in result.items())
        return files

    @cached_property
    def _checks(self) -> list[tuple[str, Check]]:
        return self._lists("mpforge_checks", Callable, "a list of functions taking the FileTree")  # type: ignore[arg-type]

    def run_checks(self, tree: FileTree) -> list[Problem]:
        """Every plugin's output rules over the rendered tree."""
        problems: list[Problem] = []
        for plugin, rule in self._checks:
            try:
                with plugin_output_to_stderr():
                    found = rule(tree)
            except UserError:
                raise
            except (Exception, SystemExit) as exc:
                raise self._failure(plugin, "mpforge_checks", exc) from exc
            if not isinstance(found, (list, tuple)) or not all(isinstance(p, Problem) for p in found):
                raise self._wrong_result(plugin, f"mpforge_checks ({getattr(rule, '__name__', rule)})", found,
                                         "a list of Problem")
            problems.extend(found)
        return problems

    def after_build(self, result: WriteResult, spec: ValidSpec) -> None:
        self._call("mpforge_after_build", result=result, spec=spec)

    # --- the back end's hooks: called by `mpforge serve` and its sandbox, never by a build ---

    def serve_migrations(self) -> list[tuple[str, Path]]:
        """(plugin, folder) of every plugin's Alembic revisions; each folder must exist."""
        found = self._lists("mpforge_serve_migrations", (str, Path), "a list of folders (str or Path)")
        for plugin, folder in found:
            if not Path(folder).is_dir():
                raise self._failure(plugin, "mpforge_serve_migrations",
                                    FileNotFoundError(f"no folder of Alembic revisions at {folder}"))
        return [(plugin, Path(folder)) for plugin, folder in found]

    def serve_endpoints(self) -> list[tuple[str, Endpoint]]:
        """(plugin, endpoint) of every route plugins add to the back end; one method and
        path, or one operation name, claimed twice is an error naming both plugins."""
        from .serve.openapi import Endpoint

        found = self._lists("mpforge_serve_routes", Endpoint, "a list of Endpoint")
        routes: dict[str, tuple[str, Any]] = {}
        names: dict[str, tuple[str, Any]] = {}
        for plugin, endpoint in found:
            operation = endpoint.operation
            self._claim(routes, f"{operation.method} {operation.path}", plugin, endpoint, "route",
                        "mpforge_serve_routes")
            self._claim(names, operation.name, plugin, endpoint, "operation", "mpforge_serve_routes")
        return found

    def serve_tasks(self) -> list[PeriodicTask]:
        """Every periodic task plugins add to the back end; a name claimed twice is an
        error naming both plugins."""
        from .serve.jobs import PeriodicTask

        found: dict[str, tuple[str, Any]] = {}
        for plugin, task in self._lists("mpforge_serve_tasks", PeriodicTask, "a list of PeriodicTask"):
            self._claim(found, task.name, plugin, task, "periodic task", "mpforge_serve_tasks")
        return [task for _, task in found.values()]

    def serve_sold_out(self, storage: Storage, appid: str, products: Sequence[CatalogueProduct]) -> set[str]:
        """The products of app `appid` some plugin counts as sold out now."""
        return {product for _, product in self._lists("mpforge_serve_sold_out", str, "a list of product ids",
                                                      storage=storage, appid=appid, products=products)}

    def serve_event(self, context: TaskContext, event: BusinessEvent) -> None:
        """Tell every plugin of `event`; a plugin's failure is logged with its name, never
        raised (business_events.py says why)."""
        with plugin_output_to_stderr():
            for impl in reversed(self.pm.hook.mpforge_serve_event.get_hookimpls()):
                arguments = {"context": context, "event": event}
                try:
                    impl.function(*(arguments[name] for name in impl.argnames))
                except Exception:
                    LOG.exception("plugin '%s' failed on the event %s %s of app %s", impl.plugin_name, event.kind,
                                  event.ref, event.appid)

    def serve_in_audience(self, storage: Storage, appid: str, user: AlipayUser, audience: str,
                          sections: Mapping[str, Any]) -> bool | None:
        """Whether `user` is in `audience` by the plugins that know it: False when any says
        no, True when one says yes and none no, None when none knows the audience.
        `sections`: the app's spec sections (Merchant.sections)."""
        answers = self._call("mpforge_serve_in_audience", storage=storage, appid=appid, user=user,
                             audience=audience, sections=sections)
        for plugin, answer in answers:
            if not isinstance(answer, bool):
                raise self._wrong_result(plugin, "mpforge_serve_in_audience", answer, "True, False or None")
        if not answers:
            return None
        return all(answer for _, answer in answers)

    def serve_user_data(self, storage: Storage, appid: str, user: AlipayUser) -> dict[str, Any]:
        """Every plugin's records of `user`, merged (keys are the plugins' own)."""
        found: dict[str, Any] = {}
        for plugin, data in self._call("mpforge_serve_user_data", storage=storage, appid=appid, user=user):
            if not isinstance(data, dict):
                raise self._wrong_result(plugin, "mpforge_serve_user_data", data, "a dict")
            found.update(data)
        return found

    def serve_forget_user(self, storage: Storage, appid: str, user: AlipayUser) -> None:
        self._call("mpforge_serve_forget_user", storage=storage, appid=appid, user=user)

    def sandbox_methods(self) -> dict[str, SandboxMethod]:
        """Alipay method name -> the sandbox's handler, from every plugin."""
        found: dict[str, tuple[str, Any]] = {}
        for plugin, methods in self._call("mpforge_sandbox_methods"):
            if not isinstance(methods, dict) or not all(
                    isinstance(name, str) and callable(handler) for name, handler in methods.items()):
                raise self._wrong_result(plugin, "mpforge_sandbox_methods", methods,
                                         "a dict of Alipay method name to handler(state, app_id, params)")
            for name, handler in methods.items():
                self._claim(found, name, plugin, handler, "sandbox method", "mpforge_sandbox_methods")
        return {name: handler for name, (_, handler) in found.items()}

    def sandbox_routes(self) -> list[Route]:
        """Every route plugins add to the sandbox gateway's app."""
        from starlette.routing import Route

        return [route for _, route in self._lists("mpforge_sandbox_routes", Route, "a list of starlette Route")]

    def serve_pages(self) -> list[tuple[str, BaseRoute]]:
        """(plugin, route) of every web page plugins add to the back end."""
        from starlette.routing import BaseRoute

        return self._lists("mpforge_serve_pages", BaseRoute, "a list of starlette Route or Mount")


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(x).__name__ for x in value})
        return f"a {type(value).__name__} of {', '.join(kinds)}" if kinds else f"an empty {type(value).__name__}"
    return f"a {type(value).__name__}" if not isinstance(value, type) else f"the class {value.__name__}"


@contextmanager
def plugin_output_to_stderr() -> Iterator[None]:
    """While plugin code runs, what it prints goes to stderr: stdout carries mpforge's
    reports (`check --format json`), which one print() would make unreadable.

    Not contextlib.redirect_stdout, which restores whatever it found: builds that
    overlap in threads would leave stdout pointing at stderr for good. Here only a swap
    that found the real stdout puts it back, and only if stdout is still the swap.
    """
    found = sys.stdout
    if found is sys.stderr:  # already swapped (a nested call, or another thread's build)
        yield
        return
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        if sys.stdout is sys.stderr:
            sys.stdout = found


def _name_line(file: Path | None) -> int | None:
    """The line of a plugin module's PLUGIN_NAME, where its name is set."""
    try:
        lines = file.read_text("utf-8").splitlines() if file else []
    except (OSError, UnicodeDecodeError):
        return None
    return next((i for i, line in enumerate(lines, 1) if line.startswith("PLUGIN_NAME")), None)


def _module_file(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file) if file else None


def _where(func: Any, file: Path | None) -> dict[str, Any]:
    """file and line of a plugin's function, for a located problem."""
    code = getattr(func, "__code__", None)
    source = code.co_filename if code else (str(file) if file else None)
    return {"file": source, "line": code.co_firstlineno if code else None}


def _load_entry_point(entry: EntryPoint) -> ModuleType:
    dist = f"{entry.dist.name} {entry.dist.version}" if entry.dist else entry.value
    try:
        with plugin_output_to_stderr():
            module = entry.load()
    except SystemExit as exc:
        raise PluginError(entry.name, f"its import ({dist})", exc) from exc
    except Exception as exc:
        raise PluginLoadError([Problem(
            f"installed plugin '{entry.name}' ({dist}) failed to import: {type(exc).__name__}: {exc}",
            hint=f"fix or reinstall it, or leave it out with --disable-plugin {entry.name}")]) from exc
    if not isinstance(module, ModuleType):
        raise PluginLoadError([Problem(
            f"installed plugin '{entry.name}' ({dist}) names {entry.value}, which is not a module",
            hint=f"the entry point must name the plugin's module; --disable-plugin {entry.name} leaves it out")])
    return module


def _import(target: str, root: Path) -> ModuleType:
    """Import a plugin given as a .py path (relative to `root`) or a module name.

    Project-local plugin code is executed afresh on every load, so an edited plugin
    file takes effect on the next build (and in `mpforge dev`).
    """
    if is_path(target):
        path = (root / target).resolve()
        if not path.is_file():
            raise FileNotFoundError(path)
        module_name = f"mpforge_local_{path.stem}_{abs(hash(str(path)))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ModuleNotFoundError(f"cannot load {path} as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(target)
        if Path(getattr(module, "__file__", "") or "/").resolve().is_relative_to(root.resolve()):
            module = importlib.reload(module)
        return module
    finally:
        sys.path.remove(str(root))


def plugin_files(modules: Iterable[object]) -> list[Path]:
    """The code of these plugin modules: a package's folder or a module's file."""
    files = []
    for module in modules:
        file = Path(getattr(module, "__file__", "") or "")
        if file.name:
            files.append(file.parent if file.name == "__init__.py" else file)
    return files
