"""docs/deploy.md names only what exists: every option it gives uvicorn, `mpforge serve`,
pg_dump and pg_restore is in their --help, the app factory it names builds the app from
the environment variables it lists (and refuses a missing one by name), and every
MPFORGE_ variable it lists is one the code reads.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import REPO
from pg_cluster import server_binaries
from serve_support import APPID, coupon, write_spec

from builder.cli import main
from builder.errors import UserError
from builder.serve import server
from builder.serve.sandbox_keys import generate_key_pair

DOC = (REPO / "docs" / "deploy.md").read_text("utf-8")
CODE = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", DOC, flags=re.DOTALL))
PROSE = re.sub(r"```.*?```", "", DOC, flags=re.DOTALL)
# The back end's code: the core's and the plugins' serve.py (ordering reads MPFORGE_PUBLIC_URL).
SOURCE = "\n".join(path.read_text("utf-8") for path in [*(REPO / "builder" / "serve").glob("*.py"),
                                                        *(REPO / "plugins").glob("*/serve.py")])


def options_of(command: str) -> set[str]:
    """The --options given to `command` anywhere in the doc's code blocks (shell lines,
    systemd's ExecStart, the Dockerfile's JSON CMD) and in its `inline code`."""
    found: set[str] = set()
    for line in CODE.splitlines() + [code.replace("\n", " ") for code in re.findall(r"`([^`]+)`", PROSE)]:
        if re.search(rf"(^|[\s/\"]){re.escape(command)}\b", line):
            found |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    return found


def help_text(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_uvicorn_option_in_the_doc_exists() -> None:
    named = options_of("uvicorn")
    assert {"--factory", "--workers", "--forwarded-allow-ips", "--proxy-headers"} <= named
    known = help_text(sys.executable, "-m", "uvicorn", "--help")
    assert sorted(o for o in named if o not in known) == []


def test_every_mpforge_serve_option_in_the_doc_exists() -> None:
    named = options_of("mpforge serve")
    assert "--database" in named
    known = CliRunner().invoke(main, ["serve", "--help"]).output
    assert sorted(o for o in named if o not in known) == []


def test_every_postgresql_tool_option_in_the_doc_exists() -> None:
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL's client binaries are not installed (apt-get install postgresql)")
    for tool in ("pg_dump", "pg_restore"):
        named = options_of(tool)
        assert named, tool
        known = help_text(str(bin_dir / tool), "--help")
        assert sorted(o for o in named if o not in known) == [], tool


def test_the_factory_the_doc_names_exists_and_every_variable_it_lists_is_read() -> None:
    assert "builder.serve.server:app_from_environment" in DOC and callable(server.app_from_environment)
    variables = set(re.findall(r"MPFORGE_[A-Z_]+", DOC))
    assert {"MPFORGE_SERVE_SPECS", "MPFORGE_DATABASE_URL", "MPFORGE_SERVE_SECRET",
            "MPFORGE_ALIPAY_APP_PRIVATE_KEY_", "MPFORGE_ALIPAY_PUBLIC_KEY_"} <= variables
    assert sorted(v for v in variables if v not in SOURCE) == []


def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "shop", [coupon("welcome")])
    app_keys, alipay_keys = generate_key_pair(), generate_key_pair()
    monkeypatch.setenv("MPFORGE_SERVE_SPECS", str(spec))
    monkeypatch.setenv("MPFORGE_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    monkeypatch.setenv("MPFORGE_SERVE_SECRET", "x" * 48)
    monkeypatch.setenv(f"MPFORGE_ALIPAY_APP_PRIVATE_KEY_{APPID}", app_keys.private_pem)
    monkeypatch.setenv(f"MPFORGE_ALIPAY_PUBLIC_KEY_{APPID}", alipay_keys.public_pem)


def test_the_factory_builds_the_app_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _environment(monkeypatch, tmp_path)
    app = server.app_from_environment()
    try:
        assert list(app.state.api.merchants) == [APPID]
        assert app.state.api.clients[APPID].app_id == APPID
    finally:
        app.state.api.storage.dispose()
    assert (tmp_path / "serve.sqlite3").exists()  # migrated at start-up


@pytest.mark.parametrize(("variable", "value"), [("MPFORGE_SERVE_SPECS", ""), ("MPFORGE_DATABASE_URL", ""),
                                                 ("MPFORGE_SERVE_SECRET", "too short")])
def test_the_factory_names_the_variable_missing_or_wrong(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         variable: str, value: str) -> None:
    _environment(monkeypatch, tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=variable):
        server.app_from_environment()
