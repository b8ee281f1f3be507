"""Loading plugins and calling their hooks with failures attributed to the plugin.

Plugins come from four places, in this order: the core (always), installed packages
(entry-point group `mpforge`), the spec's `plugins:` list (a `.py` file beside the spec
or an importable module), and `--plugin MODULE` on the command line. `--disable-plugin`
blocks one by name. A spec's `requires:` names plugins with version ranges.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import __version__, hookspecs
from .blocks import BlockType
from .errors import PluginError, Problem, SpecError, UserError

if TYPE_CHECKING:
    from .load import LoadedSpec

ENTRY_POINT_GROUP = "mpforge"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    source: str  # "core", "entry point", "spec", "command line"
    module: str


class Plugins:
    """The loaded plugins and what they contribute, gathered once per build."""

    def __init__(self, *, extra: Sequence[str] = (), disabled: Sequence[str] = (),
                 spec: LoadedSpec | None = None):
        from . import core_plugin

        if "core" in disabled:
            raise UserError([Problem("the core plugin cannot be disabled")])
        self.pm = pluggy.PluginManager("mpforge")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._skipped: set[str] = set()  # disabled plugins that were found
        self._targets: set[str] = set()  # local plugins loaded, by resolved path or module name
        self._add(core_plugin, "core", __version__, "core")
        for name in disabled:
            self.pm.set_blocked(name)
        self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for plugin, dist in self.pm.list_plugin_distinfo():
            name = self.pm.get_name(plugin)
            # A module's own __version__ wins: first-party plugins share mpforge's distribution.
            version = str(getattr(plugin, "__version__", None) or dist.version)
            self.info[name] = PluginInfo(name, version, "entry point", plugin.__name__)
        if spec is not None:
            self._load_from_spec(spec, disabled)
        for target in extra:
            self._load(target, Path.cwd(), "command line", disabled, None)
        self.pm.check_pending()
        self._check_disabled(disabled)
        if spec is not None:
            self._check_requires(spec)

    # --- loading ----------------------------------------------------------------------

    def _add(self, module: ModuleType, name: str, version: str, source: str) -> None:
        if self.pm.is_registered(module):
            return  # e.g. an installed plugin also listed by module name: load it once
        if self.pm.has_plugin(name) or name in self.info:
            raise UserError([Problem(f"two plugins are named '{name}' ({self.info[name].module} and {module.__name__})",
                                     hint="rename one (set PLUGIN_NAME in the module)")])
        self.pm.register(module, name=name)
        self.info[name] = PluginInfo(name, version, source, module.__name__)

    def _load_from_spec(self, spec: LoadedSpec, disabled: Sequence[str]) -> None:
        entries = spec.data.get("plugins") if isinstance(spec.data, dict) else None
        if entries is None:
            return
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise SpecError([spec.problem(("plugins",), "'plugins' must be a list of module names or .py paths",
                                          hint="e.g. plugins: [./my_plugin.py, agency_blocks]")])
        for i, target in enumerate(entries):
            self._load(target, spec.root, "spec", disabled, lambda msg, hint=None, i=i: spec.problem(
                ("plugins", i), msg, hint=hint))

    def _load(self, target: str, root: Path, source: str, disabled: Sequence[str], locate) -> None:
        locate = locate or (lambda msg, hint=None: Problem(msg, hint=hint))
        key = str((root / target).resolve()) if _is_path(target) else target
        if key in self._targets:
            return  # listed in the spec and on the command line: load it once
        self._targets.add(key)
        try:
            module = _import(target, root)
        except FileNotFoundError:
            raise SpecError([locate(f"plugin file not found: {target}")]) from None
        except ModuleNotFoundError as exc:
            raise SpecError([locate(f"cannot import plugin '{target}': {exc}",
                                    hint="install it, or give a path like ./my_plugin.py")]) from None
        except Exception as exc:  # the plugin's own code failed while importing
            raise SpecError([locate(f"plugin '{target}' failed to import: {type(exc).__name__}: {exc}",
                                    hint="rerun with --traceback")]) from exc
        name = getattr(module, "PLUGIN_NAME", None) or target.rsplit("/", 1)[-1].removesuffix(".py").rsplit(".", 1)[-1]
        if name in disabled:
            self._skipped.add(name)
            return
        self._add(module, name, str(getattr(module, "__version__", "0")), source)

    def _check_disabled(self, disabled: Sequence[str]) -> None:
        from importlib.metadata import entry_points

        from .errors import did_you_mean

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
                state = "disabled" if self.pm.is_blocked(name) else "not installed"
                problems.append(spec.problem(where, f"the spec requires plugin '{name}' ({wanted}), which is {state}",
                                             hint=f"install the package that provides the '{name}' plugin "
                                                  f"(entry-point group '{ENTRY_POINT_GROUP}') or list it under 'plugins'"))
                continue
            try:
                ok = Version(info.version) in specifier
            except InvalidVersion:
                ok = False
            if not ok:
                problems.append(spec.problem(where, f"plugin '{name}' is version {info.version}, the spec requires {wanted}",
                                             hint=f"upgrade the package that provides '{name}'"))
        if problems:
            raise SpecError(problems)

    # --- calling hooks ----------------------------------------------------------------

    def call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call `hook` on every plugin (pluggy's order); returns (plugin name, result) pairs.

        Implementations are called one by one instead of through pluggy's multicall so
        an exception can be pinned to the plugin that raised it.
        """
        results = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                result = impl.function(*(kwargs[name] for name in impl.argnames))
            except UserError:
                raise
            except Exception as exc:
                raise PluginError(impl.plugin_name, hook, exc) from exc
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    @cached_property
    def block_owners(self) -> dict[str, str]:
        """Block type name -> name of the plugin that registered it."""
        return {name: owner for name, (owner, _) in self._blocks.items()}

    @cached_property
    def block_types(self) -> dict[str, BlockType]:
        return {name: block_type for name, (_, block_type) in self._blocks.items()}

    @cached_property
    def _blocks(self) -> dict[str, tuple[str, BlockType]]:
        found: dict[str, tuple[str, BlockType]] = {}
        for plugin, types in self.call("mpforge_block_types"):
            for block_type in types:
                if block_type.name in found:
                    raise UserError([Problem(
                        f"block type '{block_type.name}' is defined by both plugin "
                        f"'{found[block_type.name][0]}' and plugin '{plugin}'", hint="disable one of them")])
                found[block_type.name] = (plugin, block_type)
        return found

    @cached_property
    def section_owners(self) -> dict[str, str]:
        return {key: owner for key, (owner, _) in self._sections.items()}

    @cached_property
    def sections(self) -> dict[str, type]:
        return {key: model for key, (_, model) in self._sections.items()}

    @cached_property
    def _sections(self) -> dict[str, tuple[str, type]]:
        found: dict[str, tuple[str, type]] = {}
        for plugin, sections in self.call("mpforge_spec_sections"):
            for key, model in sections.items():
                if key in found:
                    raise UserError([Problem(
                        f"spec section '{key}' is defined by both plugin '{found[key][0]}' "
                        f"and plugin '{plugin}'", hint="disable one of them")])
                found[key] = (plugin, model)
        return found

    @cached_property
    def template_dirs(self) -> list[tuple[str, Path]]:
        """(plugin, folder) pairs; pluggy calls the core (registered first) last, so it ends last."""
        return [(plugin, Path(d)) for plugin, dirs in self.call("mpforge_template_dirs") for d in dirs]

    @cached_property
    def checks(self) -> list[tuple[str, Any]]:
        return [(plugin, check) for plugin, checks in self.call("mpforge_checks") for check in checks]


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target


def _import(target: str, root: Path) -> ModuleType:
    """Import a plugin given as a .py path (relative to `root`) or a module name.

    Project-local plugin code is executed afresh on every load, so an edited plugin
    file takes effect on the next build (and in `mpforge dev`).
    """
    if _is_path(target):
        path = (root / target).resolve()
        if not path.is_file():
            raise FileNotFoundError(path)
        module_name = f"mpforge_local_{path.stem}_{abs(hash(str(path)))}"
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)  # type: ignore[arg-type]
        sys.modules[module_name] = module  # dataclasses and pickling look the module up
        try:
            loader_spec.loader.exec_module(module)  # type: ignore[union-attr]
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
