"""scripts/install-test-deps asks apt only for what is missing.

The README's test command used to run `apt-get install nodejs npm ...` whatever was
there; with a Node.js that did not come from Debian (NodeSource's brings its own npm)
apt refuses `npm` and no test ran. These tests run the script with a PATH of chosen
tools and an apt-get that records what it was asked for and then stops the script, so
nothing is installed. (Its "nothing missing" path runs in every CI run: .ci/run calls it.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers import REPO

SCRIPT = REPO / "scripts" / "install-test-deps"


def run_with(tmp_path: Path, present: list[str], uid: int = 0, python_makes_venvs: bool = True,
             postgresql: bool = True) -> tuple[subprocess.CompletedProcess, str]:
    """Run a copy of the script (in a checkout without .venv) where only `present`, a
    python3 and the shell's own tools are on PATH; what it asked apt to install."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / "scripts" / SCRIPT.name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("dirname"), bin_dir / "dirname")
    log = tmp_path / "apt.log"
    fakes = {tool: "exit 0" for tool in present}
    fakes.update({"id": f"echo {uid}", "python3": "exit 0" if python_makes_venvs else "exit 1",
                  "apt-get": f'[ "$1" = update ] && exit 0\necho "$@" > "{log}"\nexit 42'})
    for tool, body in fakes.items():
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    # Where the script looks for PostgreSQL's initdb: a file made here, or nothing.
    initdb = tmp_path / "pg" / "15" / "bin" / "initdb"
    if postgresql:
        initdb.parent.mkdir(parents=True)
        initdb.write_text("")
    env = {"PATH": str(bin_dir), "MPFORGE_PG_BIN_GLOB": str(tmp_path / "pg" / "*" / "bin" / "initdb")}
    done = subprocess.run([shutil.which("bash"), str(checkout / "scripts" / SCRIPT.name)],
                          env=env, capture_output=True, text=True, timeout=60)
    return done, log.read_text().strip() if log.exists() else ""


def test_a_nodejs_with_its_own_npm_is_left_alone(tmp_path):
    done, asked = run_with(tmp_path, ["node", "npm", "zbarimg"])
    assert done.returncode == 42, done.stderr  # stopped by the fake apt-get
    assert asked == "install -y -qq librsvg2-bin chromium"


def test_only_the_missing_npm_is_installed_beside_debians_nodejs(tmp_path):
    _, asked = run_with(tmp_path, ["node", "zbarimg", "rsvg-convert", "chromium"])
    assert asked == "install -y -qq npm"


def test_a_bare_debian_gets_everything(tmp_path):
    _, asked = run_with(tmp_path, [], python_makes_venvs=False, postgresql=False)
    assert asked == "install -y -qq nodejs npm zbar-tools librsvg2-bin chromium postgresql python3-venv"


def test_without_root_it_names_what_is_missing_and_installs_nothing(tmp_path):
    done, asked = run_with(tmp_path, ["node", "npm", "zbarimg", "rsvg-convert"], uid=1000)
    assert done.returncode == 1 and asked == ""
    assert "missing system packages: chromium; installing them needs root" in done.stderr
