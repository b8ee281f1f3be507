"""Batch builds (`mpforge build A B C -o OUT --jobs N`) and the no-op build cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import MINIMAL_SPEC, SAMPLES, tree_hashes, write_project


def _project(root, name, spec=MINIMAL_SPEC):
    return write_project(root / name, spec)


def _mtimes(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_builds_every_good_spec_and_names_the_bad_one(cli, tmp_path, jobs):
    specs = [_project(tmp_path / "specs", name) for name in ("acme", "bravo", "cosmo")]
    bad = tmp_path / "specs" / "broken.yaml"
    bad.write_text("spec_version: 1\napp: {name: Broken}\nmerchant: {name: B}\npages: []\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cli("build", specs[0], specs[1], bad, specs[2].parent, "-o", out, "--jobs", jobs)
    assert result.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["acme", "bravo", "cosmo"]
    for name in ("acme", "bravo", "cosmo"):
        assert json.loads((out / name / "app.json").read_text())["pages"] == ["pages/home/home", "pages/about/about"]
    assert "broken.yaml:4:8: pages: " in result.stderr
    assert "3 of 4 specs built" in result.stderr and f"failed: {bad}" in result.stderr


def test_batch_outputs_are_identical_whatever_the_job_count(cli, tmp_path):
    specs = [str(SAMPLES / "harbour-coffee"), str(SAMPLES / "linli-fresh")]
    assert cli("build", *specs, "-o", tmp_path / "one", "-j", "1").exit_code == 0
    assert cli("build", *specs, "-o", tmp_path / "two", "-j", "2").exit_code == 0
    skip = {".mpforge.lock", ".mpforge-cache.json"}
    for name in ("harbour-coffee", "linli-fresh"):
        one = {k: v for k, v in tree_hashes(tmp_path / "one" / name).items() if k.split("/")[-1] not in skip}
        two = {k: v for k, v in tree_hashes(tmp_path / "two" / name).items() if k.split("/")[-1] not in skip}
        assert one == two and "app.json" in one


def test_batch_refuses_two_specs_with_one_output_name(cli, tmp_path):
    first = _project(tmp_path / "a", "shop")
    second = _project(tmp_path / "b", "shop")
    result = cli("build", first, second, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "would both build into" in result.stderr and not (tmp_path / "out").exists()


def test_batch_needs_an_output_folder(cli, tmp_path):
    result = cli("build", _project(tmp_path, "a"), _project(tmp_path, "b"))
    assert result.exit_code == 2 and "needs -o/--output" in result.stderr  # a usage error


def test_batch_reports_a_plugin_crash_as_internal_and_goes_on(cli, tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text("from builder.plugin_api import hookimpl\nPLUGIN_NAME = 'crash'\n"
                     "@hookimpl\ndef mpforge_app_json(app_json, spec):\n"
                     "    if spec.model.app.name == 'Crash':\n        raise RuntimeError('boom')\n", encoding="utf-8")
    good = _project(tmp_path, "good")
    bad = _project(tmp_path, "bad", {**MINIMAL_SPEC, "app": {"name": "Crash"}})
    result = cli("build", good, bad, "-o", tmp_path / "out", "--plugin", crash, "-j", "2")
    assert result.exit_code == 2
    assert f"plugin 'crash' ({crash}) failed in mpforge_app_json: RuntimeError: boom" in result.stderr
    assert (tmp_path / "out" / "good" / "app.json").is_file() and not (tmp_path / "out" / "bad").exists()


def test_unchanged_build_is_skipped_and_writes_nothing(cli, project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    before = _mtimes(out)
    again = cli("build", spec, "-o", out)
    assert again.exit_code == 0 and "up to date" in again.stdout
    assert _mtimes(out) == before


@pytest.mark.parametrize("change", ["spec", "asset", "new asset", "template override", "output edited", "date"])
def test_any_change_to_inputs_or_outputs_means_a_real_build(cli, project, tmp_path, monkeypatch, change):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795564800")
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    assets = spec.parent / "assets"
    if change == "spec":
        data = yaml.safe_load(spec.read_text())
        data["pages"][0]["blocks"][0]["text"] = "Changed"
        spec.write_text(yaml.safe_dump(data, allow_unicode=True))
    elif change == "asset":
        (assets / "banner.png").write_bytes((assets / "banner.png").read_bytes() + b"\0")
    elif change == "new asset":
        shutil.copy(assets / "banner.png", assets / "banner2.png")
    elif change == "template override":
        (spec.parent / "templates" / "blocks").mkdir(parents=True)
        (spec.parent / "templates" / "blocks" / "heading.axml").write_text('<view class="h">[[ key ]]</view>\n')
    elif change == "output edited":
        (out / "app.js").write_text("// edited by hand\n")
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(1795564800 + 86400))
    result = cli("build", spec, "-o", out)
    if change == "output edited":
        # Not up to date, and not silently overwritten either: refused until --force.
        assert result.exit_code == 1 and f"{out / 'app.js'}: was edited since" in result.stderr, result.output
        assert (out / "app.js").read_text() == "// edited by hand\n"
        result = cli("build", spec, "-o", out, "--force")
        assert (out / "app.js").read_text() != "// edited by hand\n"
    assert result.exit_code == 0 and "up to date" not in result.stdout, result.output
    assert "up to date" in cli("build", spec, "-o", out).stdout  # and settled again


def test_force_rebuilds_and_a_failed_build_does_not_leave_a_stale_skip(cli, project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    assert "up to date" not in cli("build", spec, "-o", out, "--force").stdout
    good = spec.read_text()
    spec.write_text(good.replace("type: heading", "type: headingg"))
    assert cli("build", spec, "-o", out).exit_code == 1
    spec.write_text(good)  # back to exactly what the cache recorded: a skip is right
    assert "up to date" in cli("build", spec, "-o", out).stdout


def test_no_op_build_does_not_import_the_pipeline(project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "builder", "build", str(spec), "-o", str(out)], check=True,
                   capture_output=True)
    code = ("import sys\nfrom builder.cli import main\n"
            f"try:\n    main(['build', {str(spec)!r}, '-o', {str(out)!r}])\nexcept SystemExit:\n    pass\n"
            "print('heavy=' + ','.join(m for m in ('pydantic', 'jinja2') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "up to date" in result.stdout and result.stdout.strip().splitlines()[-1] == "heavy="
