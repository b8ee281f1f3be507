"""PLACEHOLDER (being written by a helper; replaced before this lands)."""

from __future__ import annotations

from typing import Any

SANDBOX_METHODS: dict[str, Any] = {}
