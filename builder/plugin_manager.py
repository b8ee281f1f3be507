"""Loading plugins and calling their hooks with failures attributed to the plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .blocks import BlockType
from .errors import PluginError, Problem, UserError

ENTRY_POINT_GROUP = "mpforge"


def make_plugin_manager() -> pluggy.PluginManager:
    """The core plugin plus every plugin installed under the `mpforge` entry-point group."""
    from . import core_plugin

    pm = pluggy.PluginManager("mpforge")
    pm.add_hookspecs(hookspecs)
    pm.register(core_plugin, name="core")
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


@dataclass
class Plugins:
    """The loaded plugins and what they contribute, gathered once per build."""

    pm: pluggy.PluginManager = field(default_factory=make_plugin_manager)

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call `hook` on every plugin (pluggy's order), naming the plugin on failure.

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
    def block_types(self) -> dict[str, BlockType]:
        found: dict[str, BlockType] = {}
        owners: dict[str, str] = {}
        for plugin, types in self.call("mpforge_block_types"):
            for block_type in types:
                if block_type.name in found:
                    raise UserError([Problem(
                        f"block type '{block_type.name}' is defined by both plugin "
                        f"'{owners[block_type.name]}' and plugin '{plugin}'",
                        hint="disable one of them")])
                found[block_type.name] = block_type
                owners[block_type.name] = plugin
        return found

    @cached_property
    def sections(self) -> dict[str, type]:
        found: dict[str, type] = {}
        owners: dict[str, str] = {}
        for plugin, sections in self.call("mpforge_spec_sections"):
            for key, model in sections.items():
                if key in found:
                    raise UserError([Problem(
                        f"spec section '{key}' is defined by both plugin '{owners[key]}' "
                        f"and plugin '{plugin}'", hint="disable one of them")])
                found[key] = model
                owners[key] = plugin
        return found

    @cached_property
    def template_dirs(self) -> list[Path]:
        # pluggy calls the core (registered first) last, so it ends up last here too.
        return [Path(d) for _, dirs in self.call("mpforge_template_dirs") for d in dirs]

    @cached_property
    def checks(self) -> list[tuple[str, Any]]:
        return [(plugin, check) for plugin, checks in self.call("mpforge_checks") for check in checks]
