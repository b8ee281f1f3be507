"""Test helpers for plugin authors (and mpforge's own tests).

Installed as a pytest plugin, so any project with mpforge installed gets the
`mpforge_build` fixture:

    def test_my_block(mpforge_build):
        tree = mpforge_build(page_spec([{"type": "my-block", "title": "Hi"}]), plugins=["my_plugin"])
        assert "{{b0.title}}" in tree.text("pages/home/home.axml")
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from .errors import Problem, UserError
from .filetree import FileTree
from .options import PluginOptions
from .pipeline import Prepared, prepare

BASE_SPEC: dict[str, Any] = {
    "spec_version": 1,
    "app": {"name": "Test Shop"},
    "merchant": {"name": "Test Shop", "phone": "400-000-0000", "stores": [
        {"id": "main", "name": "Main store", "address": "1 Test Road", "lat": 31.23, "lng": 121.47,
         "hours": "09:00-21:00"}]},
    "pages": [{"id": "home", "title": "Home", "blocks": []}],
}


def page_spec(blocks: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    """A complete valid spec whose home page holds `blocks`, plus any extra sections."""
    spec = copy.deepcopy(BASE_SPEC)
    spec["pages"][0]["blocks"] = blocks
    spec.update(sections)
    return spec


def write_project(root: Path, spec: dict[str, Any] | str, files: dict[str, str | bytes] | None = None) -> Path:
    """Write `spec` as `root/mpforge.yaml` (a dict is dumped as YAML) and `files` beside it."""
    root.mkdir(parents=True, exist_ok=True)
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
    (root / "mpforge.yaml").write_text(text, encoding="utf-8")
    for rel, content in (files or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root / "mpforge.yaml"


def prepare_spec(spec: dict[str, Any] | str, root: Path, *, files: dict[str, str | bytes] | None = None,
                 plugins: Sequence[str] = (), disabled: Sequence[str] = ()) -> Prepared:
    """Write the project into `root` and run the pipeline up to the checked output:
    `.tree` (the files), `.plan`, `.spec`, `.warnings`.

    Raises `builder.plugin_api.UserError` with located problems when the spec is
    invalid. Nothing is written outside `root`.
    """
    write_project(root, spec, files)
    return prepare(root, PluginOptions(extra=tuple(plugins), disabled=tuple(disabled)))


def build_spec(spec: dict[str, Any] | str, root: Path, *, files: dict[str, str | bytes] | None = None,
               plugins: Sequence[str] = (), disabled: Sequence[str] = ()) -> FileTree:
    """`prepare_spec(...).tree`: the checked file tree."""
    return prepare_spec(spec, root, files=files, plugins=plugins, disabled=disabled).tree


def spec_problems(spec: dict[str, Any] | str, root: Path, **kwargs: Any) -> list[Problem]:
    """The located problems (errors and warnings) the spec gives; [] for a clean build."""
    try:
        return prepare_spec(spec, root, **kwargs).warnings
    except UserError as exc:
        return exc.problems


@pytest.fixture
def mpforge_build(tmp_path: Path) -> Callable[..., FileTree]:
    """`mpforge_build(spec, files=None, plugins=(), disabled=())` -> FileTree, in a temp dir."""
    counter = iter(range(1_000_000))

    def run(spec: dict[str, Any] | str, **kwargs: Any) -> FileTree:
        return build_spec(spec, tmp_path / f"project{next(counter)}", **kwargs)

    return run


@pytest.fixture
def mpforge_problems(tmp_path: Path) -> Callable[..., list[Problem]]:
    """`mpforge_problems(spec, files=None, plugins=(), disabled=())` -> the located
    problems (errors, or a clean build's warnings), for asserting on messages."""
    counter = iter(range(1_000_000))

    def run(spec: dict[str, Any] | str, **kwargs: Any) -> list[Problem]:
        return spec_problems(spec, tmp_path / f"problems{next(counter)}", **kwargs)

    return run
