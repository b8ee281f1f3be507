"""PLACEHOLDER (being written by a helper; replaced before this lands)."""

from __future__ import annotations

from typing import Any


def user_data(storage: Any, appid: str, user: Any) -> dict[str, Any]:
    del storage, appid, user
    return {}


def forget_user(storage: Any, appid: str, user: Any) -> None:
    del storage, appid, user
