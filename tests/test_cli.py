"""The command line as a user runs it: commands, output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, SAMPLES, tree_hashes, write_project

from builder import __version__
from builder.testing import page_spec


def test_version_and_help(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"mpforge, version {__version__}"
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("build", "check", "new", "schema"):
        assert command in result.stdout


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from builder.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pydantic', 'jinja2', 'rich', 'yaml', 'pluggy') if m in sys.modules]\n"
            "print('heavy=' + ','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "heavy="


def test_build_writes_and_reports(cli, tmp_path):
    out = tmp_path / "out"
    result = cli("build", SAMPLES / "linli-fresh", "-o", out)
    assert result.exit_code == 0, result.output
    assert "written" in result.stdout and (out / "app.json").is_file()
    again = cli("build", SAMPLES / "linli-fresh" / "mpforge.yaml", "-o", out, "--force")
    assert again.exit_code == 0
    unchanged_row = next(line for line in again.stdout.splitlines() if "unchanged" in line)
    written_row = next(line for line in again.stdout.splitlines() if "written" in line)
    assert " 0 " in written_row and " 0 " not in unchanged_row


def test_build_defaults_to_dist_beside_the_spec(cli, project):
    spec = project()
    result = cli("build", spec.parent)
    assert result.exit_code == 0, result.output
    assert (spec.parent / "dist" / "app.json").is_file()


def test_check_writes_nothing(cli, project):
    spec = project()
    before = tree_hashes(spec.parent)
    result = cli("check", spec)
    assert result.exit_code == 0 and "files would be generated" in result.stdout
    assert tree_hashes(spec.parent) == before


def test_check_json_reports_located_problems(cli, project):
    spec = project("spec_version: 1\napp:\n  name: X\n  colour: red\nmerchant: {name: X}\npages:\n  - {id: home, title: H}\n")
    result = cli("check", spec, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == [{"severity": "error", "file": "mpforge.yaml", "line": 4, "column": 3,
                                   "path": "app.colour", "message": "unknown key 'colour'",
                                   "hint": "allowed keys: name, appid, version, description, theme, window",
                                   "rule": None}]
    ok = json.loads(cli("check", SAMPLES / "harbour-coffee", "--format", "json").stdout)
    assert ok["ok"] is True and ok["files"] > 40


def test_user_error_exit_1_without_traceback(cli, project):
    spec = project("spec_version: 1\napp: {name: X}\nmerchant: {name: X}\npages:\n  - {id: home, title: H, blocks: [{type: banerr}]}\n")
    result = cli("build", spec)
    assert result.exit_code == 1
    assert "mpforge.yaml:5:42: pages[0].blocks[0].type: unknown block type 'banerr' (did you mean 'banner'?)" in result.stderr
    assert "Traceback" not in result.output
    assert "nothing was written" in result.stderr


def test_missing_spec_is_a_user_error(cli, tmp_path):
    result = cli("build", tmp_path)
    assert result.exit_code == 1 and "no spec found" in result.stderr


def test_internal_error_exit_2(cli, project, monkeypatch):
    import builder.plan

    def boom(*args):
        raise RuntimeError("planner exploded")

    monkeypatch.setattr(builder.plan, "plan_app", boom)
    monkeypatch.setattr("builder.pipeline.plan_app", boom)
    result = cli("build", project())
    assert result.exit_code == 2
    assert "internal error: RuntimeError: planner exploded" in result.stderr
    assert "--traceback" in result.stderr


def test_schema_command(cli, tmp_path):
    result = cli("schema")
    schema = json.loads(result.stdout)
    assert schema["title"].startswith("mpforge spec")
    assert "banner" in json.dumps(schema) and schema["additionalProperties"] is False
    target = tmp_path / "schema.json"
    assert cli("schema", "-o", target).exit_code == 0
    assert json.loads(target.read_text()) == schema


def test_new_creates_a_project_that_builds(cli, tmp_path):
    target = tmp_path / "shop"
    result = cli("new", target)
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load((target / "mpforge.yaml").read_text())
    assert spec["spec_version"] == 1
    assert cli("build", target).exit_code == 0
    assert (target / "dist" / "pages" / "home" / "home.axml").is_file()


def test_new_refuses_non_empty_dir_and_unknown_template(cli, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = cli("new", tmp_path / "busy")
    assert result.exit_code == 1 and "not empty" in result.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    result = cli("new", tmp_path / "x", "--template", "nope")
    assert result.exit_code == 1 and "available: basic" in result.stderr


def test_console_script_runs_as_subprocess(tmp_path):
    result = subprocess.run([sys.executable, "-m", "builder", "build", str(SAMPLES / "harbour-coffee"),
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "pages" / "stores" / "stores.axml").is_file()


def test_console_script_flushes_output_and_keeps_exit_codes(tmp_path):
    """entry() leaves with os._exit (no interpreter teardown): output must still be whole."""
    listing = tmp_path / "plugins.json"
    with open(listing, "w") as handle:  # a file: block-buffered, unlike a terminal
        done = subprocess.run([sys.executable, "-m", "builder", "plugins", "--format", "json"], stdout=handle)
    assert done.returncode == 0
    assert {p["name"] for p in json.loads(listing.read_text())} >= {"core", "coupon", "life_account", "promotion"}
    failed = subprocess.run([sys.executable, "-m", "builder", "check", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "spec file not found" in failed.stderr


USAGE_ERRORS = [
    ["build", "{spec}", "-o", "{file}"],
    ["build", "{spec}", "--jobs", "0"],
    ["build", "{spec}", "--nope"],
    ["build", "{spec}", "{spec}"],  # several specs need -o
    ["check", "{spec}", "--tools", "{dir}"],  # --tools without --external
    ["check", "{spec}", "--external", "--tools", "{file}"],
    ["check", "{spec}", "--format", "xml"],
    ["dev", "{spec}", "-o", "{file}"],
    ["dev", "{spec}", "--port", "70000"],
    ["preview", "{spec}", "-o", "{file}"],
    ["new", "{file}"],
    ["plugin", "new", "x", "-o", "{file}"],
    ["schema", "-o", "{dir}"],
    ["plugins", "--format", "xml"],
    ["templates", "eject"],
    ["nope"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda args: " ".join(args))
def test_usage_errors_exit_2_with_clicks_usage_message(cli, project, tmp_path, args):
    spec = project()
    file = tmp_path / "a-file"
    file.write_text("mine")
    before = tree_hashes(tmp_path)
    result = cli(*[a.format(spec=spec, file=file, dir=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert "Usage: " in result.stderr and "Error: " in result.stderr
    assert "internal error" not in result.output and "nothing was written" not in result.output
    assert tree_hashes(tmp_path) == before


def test_schema_into_a_missing_folder_is_a_user_error(cli, tmp_path):
    result = cli("schema", "-o", tmp_path / "missing" / "schema.json")
    assert result.exit_code == 1
    assert f"cannot write {tmp_path / 'missing' / 'schema.json'}: No such file or directory" in result.stderr


def test_readme_documents_the_exit_codes():
    readme = " ".join((REPO / "README.md").read_text("utf-8").split())
    for claim in ("Exit codes: `0` ok, `1` a problem in your spec or environment",
                  "`2` an internal error in mpforge or a plugin",
                  "or a mistake on the command line (an unknown option, a bad value: click's `Usage:` message"):
        assert claim in readme


def test_an_after_build_hooks_user_error_does_not_claim_nothing_was_written(cli, project, tmp_path):
    """Every user error used to end with 'nothing was written', even one an after-build
    hook raised once the output was written."""
    plugin = ("from builder.plugin_api import Problem, UserError, hookimpl\n\n@hookimpl\n"
              "def mpforge_after_build(result, spec):\n"
              "    raise UserError([Problem('upload refused: no credentials', hint='set UPLOAD_TOKEN')])\n")
    spec = project(page_spec([], plugins=["./plug.py"]), files={"plug.py": plugin}, with_assets=False)
    out = tmp_path / "out"
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 1
    assert "error: upload refused: no credentials (set UPLOAD_TOKEN)" in result.stderr
    assert "nothing was written" not in result.stderr and (out / "app.json").is_file()


# An ASCII terminal: PYTHONIOENCODING=ascii, or the C locale with Python's UTF-8 mode and
# locale coercion turned off. Printing '→', '✓' or a merchant's Chinese name used to
# raise UnicodeEncodeError after a successful build: exit 2, "internal error".
ASCII_TERMINALS = {"PYTHONIOENCODING": {"PYTHONIOENCODING": "ascii"},
                   "LANG=C": {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}}


def run_mpforge(*args, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING", "PYTHONUTF8"))}
    return subprocess.run([sys.executable, "-m", "builder", *map(str, args)], capture_output=True,
                          env={**clean, **env}, timeout=120)


@pytest.mark.parametrize("terminal", ASCII_TERMINALS)
def test_output_degrades_on_an_ascii_terminal_instead_of_failing(terminal, tmp_path):
    env = ASCII_TERMINALS[terminal]
    out = tmp_path / "out"
    built = run_mpforge("build", SAMPLES / "harbour-coffee", "-o", out, env=env)
    assert built.returncode == 0, built.stderr
    assert b"written" in built.stdout and b"internal error" not in built.stderr and (out / "app.json").is_file()
    assert max(built.stdout + built.stderr) < 128  # really an ASCII terminal
    again = run_mpforge("build", SAMPLES / "harbour-coffee", "-o", out, env=env)
    assert again.returncode == 0 and b"up to date" in again.stdout

    # JSON stays valid and equal to what a UTF-8 terminal gets: escaped, not replaced.
    for args in (["check", SAMPLES / "harbour-coffee", "--format", "json"], ["plugins", "--format", "json"],
                 ["schema"]):
        ascii_json = run_mpforge(*args, env=env)
        utf8_json = run_mpforge(*args, env={"PYTHONIOENCODING": "utf-8"})
        assert ascii_json.returncode == 0, (args, ascii_json.stderr)
        assert json.loads(ascii_json.stdout.decode("ascii")) == json.loads(utf8_json.stdout.decode("utf-8"))

    preview = run_mpforge("preview", SAMPLES / "harbour-coffee", "-o", tmp_path / "preview", env=env)
    assert preview.returncode == 0 and b"pages written" in preview.stdout, preview.stderr

    broken = write_project(tmp_path / "shop", page_spec([{"type": "横幅"}]))
    failed = run_mpforge("build", broken, env=env)
    assert failed.returncode == 1, failed.stderr
    assert b"unknown block type '\\u6a2a\\u5e45'" in failed.stderr and b"internal error" not in failed.stderr
