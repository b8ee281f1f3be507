"""Shared test helpers: build project trees inline and run the CLI like a user would."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder import testing
from builder.cli import main

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_projects"
STARTER_ASSETS = REPO / "templates" / "starters" / "basic" / "assets"

# A small valid spec; tests copy and modify it.
MINIMAL_SPEC = {
    "spec_version": 1,
    "app": {"name": "Test Shop"},
    "merchant": {
        "name": "Test Shop",
        "phone": "400-000-0000",
        "stores": [{"id": "main", "name": "Main", "address": "1 Road", "lat": 31.2, "lng": 121.4,
                    "hours": "09:00-21:00"}],
    },
    "assets": "assets",
    "pages": [
        {"id": "home", "title": "Home", "blocks": [
            {"type": "heading", "text": "Hello"},
            {"type": "banner", "slides": [{"image": "banner.png", "link": "about"}]},
        ]},
        {"id": "about", "title": "About", "blocks": [{"type": "store-info"}]},
    ],
    "tabbar": {"items": [
        {"page": "home", "text": "Home", "icon": "tab/home.png", "active_icon": "tab/home-active.png"},
        {"page": "about", "text": "About", "icon": "tab/about.png", "active_icon": "tab/about-active.png"},
    ]},
}


def write_project(root: Path, spec: dict | str, files: dict[str, bytes | str] | None = None,
                  with_assets: bool = True) -> Path:
    """Write a project: the spec (a dict is dumped as YAML), the starter assets, extra files."""
    assets = {}
    if with_assets:
        assets = {f"assets/{p.relative_to(STARTER_ASSETS).as_posix()}": p.read_bytes()
                  for p in STARTER_ASSETS.rglob("*") if p.is_file()}
    return testing.write_project(root, spec, {**assets, **(files or {})})


def tree_hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones included) with its sha256."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path):
    """Factory: project(spec_dict_or_text, files=None) -> path of the written spec."""

    def make(spec: dict | str | None = None, files: dict | None = None, with_assets: bool = True) -> Path:
        return write_project(tmp_path / "proj", MINIMAL_SPEC if spec is None else spec, files, with_assets)

    return make


@pytest.fixture
def cli():
    """Run `mpforge ARGS...` in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run
