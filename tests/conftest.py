"""Fixtures for mpforge's tests; plain helpers are in helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import MINIMAL_SPEC, chromium_path, unavailable, write_project

from builder.cli import main


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


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One Chromium for the whole run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        unavailable("Chromium is not installed (apt-get install chromium)")
    playwright = sync_playwright().start()
    launched = playwright.chromium.launch(
        executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
    try:
        yield launched
    finally:
        launched.close()
        playwright.stop()


def _new_page(browser, bypass_csp: bool):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1,
                                  bypass_csp=bypass_csp)
    tab = context.new_page()
    tab.errors = []  # type: ignore[attr-defined]
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))  # type: ignore[attr-defined]
    return context, tab


@pytest.fixture
def page(browser) -> Iterator:
    """A browser tab; the preview's Content-Security-Policy is bypassed so that Playwright's
    wait_for_function (which evaluates strings) works."""
    context, tab = _new_page(browser, bypass_csp=True)
    yield tab
    context.close()


@pytest.fixture
def strict_page(browser) -> Iterator:
    """A browser tab that enforces the preview's Content-Security-Policy."""
    context, tab = _new_page(browser, bypass_csp=False)
    yield tab
    context.close()


