"""Helpers for the browser tests: `mpforge dev` as a subprocess and headless Chromium.

Chromium is Debian's (`/usr/bin/chromium`, or $MPFORGE_CHROMIUM), driven by Playwright
for Python; Playwright's own browser downloads are never used. Without Playwright or
Chromium the browser tests skip, except in CI (`CI` set), where they fail: `.ci/run`
installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def chromium_path() -> str | None:
    for candidate in (os.environ.get("MPFORGE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs Playwright and chromium)")
    pytest.skip(reason)


_shared: dict = {"users": 0}


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One Chromium for the whole run. (Each test module that imports this fixture gets
    its own fixture instance; they share the one browser, since a second sync Playwright
    cannot start while the first runs.)"""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (apt-get install chromium)")
    if not _shared["users"]:
        playwright = sync_playwright().start()
        _shared["playwright"] = playwright
        _shared["browser"] = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
    _shared["users"] += 1
    try:
        yield _shared["browser"]
    finally:
        _shared["users"] -= 1
        if not _shared["users"]:
            _shared.pop("browser").close()
            _shared.pop("playwright").stop()


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


class DevProcess:
    """`mpforge dev SPEC --port 0 -o OUT` in a subprocess; its output is kept in `lines`."""

    def __init__(self, spec: Path, out_dir: Path, *extra: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "builder", "dev", str(spec), "--port", "0", "-o", str(out_dir), *extra],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._url = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._url.wait(60) or not self.url:
            self.stop()
            raise AssertionError("mpforge dev did not start:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
            if match and not self.url:
                self.url = match.group(1)
                self._url.set()
        self._url.set()

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def builds(self) -> int:
        return sum(1 for line in self.lines if re.match(r"[✓✗] build \d+", line))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def copy_sample(name: str, dest: Path) -> Path:
    shutil.copytree(REPO / "sample_projects" / name, dest)
    return dest / "mpforge.yaml"


def save_spec(path: Path, text: str, atomic: bool = True) -> None:
    """Save like an editor: by default write a temp file and rename it over the spec."""
    if atomic:
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    else:
        path.write_text(text, encoding="utf-8")


def dump(spec: dict) -> str:
    return yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)


def wait_for_build(page, version: int, timeout: float = 20_000) -> None:
    """Wait until the preview shows build `version` or a later one."""
    page.wait_for_function(f"Number(document.body.dataset.version || -1) >= {version}", timeout=timeout)


def shown_text(page) -> str:
    return page.locator("#mpf-page-host .mp-root").inner_text()


def poll(page, script: str, timeout: float = 20.0) -> None:
    """Wait until `script` is truthy, evaluating it over CDP (allowed under the preview's CSP,
    unlike page.wait_for_function)."""
    wait_until(lambda: page.evaluate(script), timeout, script)


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
