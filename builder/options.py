"""Build options chosen on the command line (kept light: `mpforge build` reads them
before deciding whether anything needs building at all)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PluginOptions:
    """Plugin choices from the command line (the spec's own come from its file)."""

    extra: tuple[str, ...] = ()  # --plugin MODULE
    disabled: tuple[str, ...] = ()  # --disable-plugin NAME
