"""`mpforge new`: copy a starter project out of templates/starters/."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import Problem, UserError
from .templates_path import core_templates_dir


def starters_dir() -> Path:
    return core_templates_dir() / "starters"


def create_project(directory: Path, template: str) -> Path:
    available = sorted(p.name for p in starters_dir().iterdir() if p.is_dir())
    if template not in available:
        raise UserError([Problem(f"unknown starter '{template}'", hint=f"available: {', '.join(available)}")])
    if directory.exists() and any(directory.iterdir()):
        raise UserError([Problem(f"{directory} already exists and is not empty",
                                 hint="choose a new folder name")])
    shutil.copytree(starters_dir() / template, directory, dirs_exist_ok=True)
    return directory / "mpforge.yaml"
