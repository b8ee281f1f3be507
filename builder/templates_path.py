"""Where the core templates live: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def core_templates_dir() -> Path:
    # The wheel ships the top-level templates/ folder as builder/templates (see
    # pyproject.toml); an editable install or a checkout uses the folder itself.
    packaged = _PACKAGE / "templates"
    return packaged if packaged.is_dir() else _PACKAGE.parent / "templates"
