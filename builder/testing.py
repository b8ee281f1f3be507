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

from .filetree import FileTree
from .pipeline import PluginOptions, prepare

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


def build_spec(spec: dict[str, Any] | str, root: Path, *, files: dict[str, str | bytes] | None = None,
               plugins: Sequence[str] = (), disabled: Sequence[str] = ()) -> FileTree:
    """Write the project into `root`, run the pipeline, return the checked file tree.

    Raises `builder.errors.UserError` with located problems when the spec is invalid.
    Nothing is written outside `root`.
    """
    write_project(root, spec, files)
    return prepare(root, PluginOptions(extra=tuple(plugins), disabled=tuple(disabled))).tree


@pytest.fixture
def mpforge_build(tmp_path: Path) -> Callable[..., FileTree]:
    """`mpforge_build(spec, files=None, plugins=(), disabled=())` -> FileTree, in a temp dir."""
    counter = iter(range(1_000_000))

    def run(spec: dict[str, Any] | str, **kwargs: Any) -> FileTree:
        return build_spec(spec, tmp_path / f"project{next(counter)}", **kwargs)

    return run
