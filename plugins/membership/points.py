"""PLACEHOLDER (being written by a helper; replaced before this lands)."""

from __future__ import annotations

from typing import Any

ENDPOINTS: tuple[Any, ...] = ()


def on_event(context: Any, event: Any) -> None:
    del context, event
