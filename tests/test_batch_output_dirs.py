"""Where a batch build (`mpforge build A B -o OUT`) puts each spec: always a folder of
its own directly inside OUT, whatever the targets look like on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, write_project

from builder.batch import output_dirs
from builder.errors import UserError


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_spec_named_mpforge_yaml_in_the_current_folder_gets_the_folders_name(cli, tmp_path, monkeypatch):
    """`mpforge.yaml` and `.` used to give the name '' and build into OUT itself."""
    shop = write_project(tmp_path / "shop", MINIMAL_SPEC).parent
    other = write_project(tmp_path / "other", MINIMAL_SPEC).parent
    monkeypatch.chdir(shop)
    out = tmp_path / "out"
    result = cli("build", "mpforge.yaml", other, "-o", out)
    assert result.exit_code == 0, result.output
    assert _entries(out) == ["other", "shop"] and (out / "shop" / "app.json").is_file()
    result = cli("build", ".", other, "-o", tmp_path / "out2")
    assert result.exit_code == 0, result.output
    assert _entries(tmp_path / "out2") == ["other", "shop"]


def test_a_parent_folder_target_builds_inside_the_output_folder(cli, tmp_path, monkeypatch):
    """`..` used to give the name '..' and build beside OUT, outside it."""
    shop = write_project(tmp_path / "shop", MINIMAL_SPEC).parent
    other = write_project(tmp_path / "other", MINIMAL_SPEC).parent
    monkeypatch.chdir(shop / "assets")
    out = tmp_path / "out"
    before = _entries(tmp_path)
    result = cli("build", "..", other, "-o", out)
    assert result.exit_code == 0, result.output
    assert _entries(tmp_path) == sorted([*before, "out"])  # nothing written beside OUT
    assert _entries(out) == ["other", "shop"] and (out / "shop" / "app.json").is_file()


def test_a_spec_file_whose_name_is_no_folder_name_falls_back_to_its_folder(tmp_path):
    specs = tmp_path / "specs"
    dotted = write_project(specs, MINIMAL_SPEC).rename(specs / "..yaml")  # stem '.'
    assert output_dirs([str(dotted)], tmp_path / "out") == {str(dotted): tmp_path / "out" / "specs"}
    backslash = dotted.rename(specs / "a\\b.yaml")
    assert output_dirs([str(backslash)], tmp_path / "out") == {str(backslash): tmp_path / "out" / "specs"}


def test_a_target_that_cannot_be_named_is_refused(cli, tmp_path):
    odd = write_project(tmp_path / "a\\b", MINIMAL_SPEC).parent
    other = write_project(tmp_path / "other", MINIMAL_SPEC).parent
    result = cli("build", odd, other, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert f"cannot name an output folder after {odd}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_link_out_of_the_output_is_refused(cli, tmp_path):
    shop = write_project(tmp_path / "specs" / "shop", MINIMAL_SPEC).parent
    other = write_project(tmp_path / "specs" / "other", MINIMAL_SPEC).parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "shop").symlink_to(elsewhere)
    result = cli("build", shop, other, "-o", out)
    assert result.exit_code == 1
    assert f"{out / 'shop'} leads outside {out}" in result.stderr
    assert _entries(elsewhere) == [] and _entries(out) == ["shop"]


def test_names_that_differ_only_in_case_share_a_folder_on_some_systems(tmp_path):
    first = write_project(tmp_path / "Shop", MINIMAL_SPEC)
    second = write_project(tmp_path / "x" / "shop", MINIMAL_SPEC)
    with pytest.raises(UserError, match="would both build into"):
        output_dirs([str(first), str(second)], tmp_path / "out")
