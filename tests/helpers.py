"""Helpers shared by the tests: project trees written inline, sample paths, and the
browser tests' `mpforge dev` subprocess and polling helpers. Fixtures live in conftest.py.

The browser tests use Debian's Chromium (`/usr/bin/chromium`, or $MPFORGE_CHROMIUM),
driven by Playwright for Python; Playwright's own browser downloads are never used.
Without Playwright or Chromium they skip, except in CI (`CI` set), where they fail:
`.ci/run` installs both.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from builder import testing

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


def chromium_path() -> str | None:
    for candidate in (os.environ.get("MPFORGE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs Playwright and chromium)")
    pytest.skip(reason)


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
