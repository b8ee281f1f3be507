"""Projects and environments a build must refuse as a person's mistake (exit 1, located),
never by crashing (exit 2), hanging or copying what it should not: links out of the
project, files that cannot be read, unreferenced files in the assets folder.

Spec mistakes with a fixed location are in the bad-input corpus (tests/bad_inputs/);
these need a project built on the spot (links to temporary folders, permissions, named
pipes) or a look at what was copied.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, copy_sample, tree_hashes

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY-----\n"


def line_of(spec: Path, text: str) -> int:
    return next(i for i, line in enumerate(spec.read_text("utf-8").splitlines(), 1) if text in line)


def as_a_user(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`mpforge ARGS` in a process that file modes apply to. Root reads any file whatever
    its mode, so as root the command runs without the capabilities that allow that."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: file modes cannot be made to apply")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    return subprocess.run([*prefix, sys.executable, "-m", "builder", *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


# --- only the assets the spec uses are copied ------------------------------------------------


def test_unreferenced_files_in_the_assets_folder_stay_out_of_the_package(project, cli, tmp_path):
    """The whole folder used to be copied: a key left there went into the package, and a
    file with a non-ASCII name nobody used stopped the build (output paths must be ASCII)."""
    spec = project(files={"assets/id_rsa": SECRET, "assets/横幅-原图.png": b"\x89PNG", "assets/notes/todo.txt": "x"})
    out = tmp_path / "out"
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 0, result.output
    copied = sorted(p for p in tree_hashes(out) if p.startswith("assets/"))
    assert copied == ["assets/banner.png", "assets/tab/about-active.png", "assets/tab/about.png",
                      "assets/tab/home-active.png", "assets/tab/home.png"]


def test_a_linked_assets_folder_inside_the_project_is_followed(project, tmp_path):
    from builder.pipeline import prepare

    spec = project(files={"assets/id_rsa": SECRET})
    (spec.parent / "assets").rename(spec.parent / "media")
    (spec.parent / "assets").symlink_to("media")
    tree = prepare(spec).tree
    assert "assets/banner.png" in tree and "assets/id_rsa" not in tree


def test_a_linked_assets_folder_leading_out_of_the_project_is_refused(project, cli, tmp_path):
    """assets -> a folder elsewhere (here one holding a key): refused at the 'assets' key,
    and nothing of that folder is read or written."""
    elsewhere = tmp_path / "home"
    shutil.copytree(project().parent / "assets", elsewhere)
    (elsewhere / "id_rsa").write_bytes(SECRET)
    spec = project()
    shutil.rmtree(spec.parent / "assets")
    (spec.parent / "assets").symlink_to(elsewhere)
    out = tmp_path / "out"
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 1, result.output
    assert (f"error: mpforge.yaml:{line_of(spec, 'assets: assets')}:9: assets: assets folder 'assets' is a link to a "
            f"folder outside the project ({elsewhere})") in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("link", ["banner.png", "tab"])
def test_a_link_inside_the_assets_folder_leading_out_is_refused_at_the_field(project, cli, tmp_path, link):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(project().parent / "assets", elsewhere)
    spec = project()
    target = spec.parent / "assets" / link
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.symlink_to(elsewhere / link)
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    used = "image: banner.png" if link == "banner.png" else "icon: tab/home.png"
    assert f"error: mpforge.yaml:{line_of(spec, used)}:" in result.stderr
    assert f"is a link to a file outside the project ({elsewhere}/" in result.stderr


def test_a_link_to_a_file_of_the_project_is_copied_as_that_file(project):
    from builder.pipeline import prepare

    spec = project(files={"brand/banner.png": b"\x89PNG brand"})
    (spec.parent / "assets/banner.png").unlink()
    (spec.parent / "assets/banner.png").symlink_to("../brand/banner.png")
    assert prepare(spec).tree["assets/banner.png"] == b"\x89PNG brand"


# --- asset files that cannot be read ---------------------------------------------------------


def test_an_unreadable_asset_is_a_located_user_error(project):
    """A permission error reading an asset was an internal error (exit 2), after which
    `check --format json` printed nothing."""
    spec = project()
    (spec.parent / "assets/banner.png").chmod(0)
    result = as_a_user("check", spec, "--format", "json")
    assert result.returncode == 1, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["line"], p["path"], p["message"]) for p in problems] == [
        (line_of(spec, "image: banner.png"), "pages[0].blocks[1].slides[0].image",
         "cannot read asset file assets/banner.png: Permission denied")]


@pytest.mark.parametrize("kind", ["folder", "named pipe"])
def test_an_asset_that_is_not_a_file_is_refused_without_hanging(project, cli, kind):
    """A named pipe would block the build reading it, waiting for a writer."""
    spec = project()
    banner = spec.parent / "assets/banner.png"
    banner.unlink()
    banner.mkdir() if kind == "folder" else os.mkfifo(banner)
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    assert (f"error: mpforge.yaml:{line_of(spec, 'image: banner.png')}:14: pages[0].blocks[1].slides[0].image: "
            "asset assets/banner.png is not a file") in result.stderr


# --- assets of the pages plugins add ---------------------------------------------------------

GALLERY_PLUGIN = '''
from builder.plugin_api import Page, hookimpl
from builder.core_blocks import ImageBlock


@hookimpl
def mpforge_pages(spec):
    return [Page(id="gallery", title="Gallery", blocks=[ImageBlock(type="image", image="{image}")])]
'''


def test_assets_of_pages_a_plugin_adds_are_copied_and_checked(project, tmp_path):
    from builder.errors import UserError
    from builder.pipeline import prepare

    spec = project({**MINIMAL_SPEC, "plugins": ["./gallery.py"]},
                   files={"gallery.py": GALLERY_PLUGIN.format(image="menu/cake.png"), "assets/menu/cake.png": b"cake"})
    assert prepare(spec).tree["assets/menu/cake.png"] == b"cake"
    (spec.parent / "gallery.py").write_text(GALLERY_PLUGIN.format(image="menu/pie.png"))
    with pytest.raises(UserError) as info:
        prepare(spec)
    assert [(p.message, p.hint) for p in info.value.problems] == [
        ("asset file not found: assets/menu/pie.png", "page 'gallery' is added by a plugin")]


# --- the environment -------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("abc", "SOURCE_DATE_EPOCH is 'abc', not a whole number of seconds since 1970-01-01"),
    ("1.5e9", "SOURCE_DATE_EPOCH is '1.5e9', not a whole number of seconds since 1970-01-01"),
    ("１７９５５６４８００", "not a whole number of seconds"),  # int() takes fullwidth digits
    ("9" * 30, "past any date a build can have"),
])
def test_a_bad_source_date_epoch_is_a_user_error(project, cli, monkeypatch, value, message):
    """It was int(value) unchecked: a ValueError, exit 2, and no JSON report."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    spec = project()
    result = cli("check", spec, "--format", "json")
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 1 and message in problems[0]["message"]
    result = cli("build", spec)
    assert result.exit_code == 1 and message in result.stderr and "(set it as `date +%s` prints it" in result.stderr


def test_a_source_date_epoch_with_a_newline_still_works(project, monkeypatch):
    from builder.pipeline import prepare

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795564800\n")
    assert prepare(project()).spec.today.isoformat() == "2026-11-25"


# --- templates that cannot be read -----------------------------------------------------------


@pytest.mark.parametrize("template", ["blocks/heading.axml", "coupon/service.js"])
def test_an_unreadable_template_is_a_user_error_naming_it(tmp_path, template):
    """Reading it raised PermissionError: an internal error (exit 2) or, for a template a
    plugin's hook renders (coupon/service.js), a failure blamed on that plugin."""
    spec = copy_sample("linli-fresh", tmp_path / "shop")
    override = spec.parent / "templates" / template
    override.parent.mkdir(parents=True)
    override.write_text("// mine\n")
    override.chmod(0)
    result = as_a_user("check", spec, "--format", "json")
    assert result.returncode == 1, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["file"], p["message"]) for p in problems] == [(str(override), "cannot read template: Permission denied")]


@pytest.mark.parametrize("template", ["blocks/heading.axml", "coupon/service.js"])
def test_a_template_that_is_not_utf8_is_a_user_error_at_its_line(tmp_path, cli, template):
    """Jinja's UnicodeDecodeError was an internal error (exit 2)."""
    spec = copy_sample("linli-fresh", tmp_path / "shop")
    override = spec.parent / "templates" / template
    override.parent.mkdir(parents=True)
    override.write_bytes("<!-- 门店 -->\n".encode() + b"<view>\xff</view>\n")
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    assert f"error: {override}:2: template is not UTF-8: invalid byte 0xff (save it as UTF-8)" in result.stderr


# --- plugins' app files ----------------------------------------------------------------------

FILE_PLUGIN = '''
from builder.plugin_api import hookimpl

PLUGIN_NAME = "{name}"


@hookimpl
def mpforge_services(plan, spec, render):
    return {{"{path}": "{{}}\\\\n"}}
'''


@pytest.mark.parametrize("path, refused, owner", [
    ("app.json", "second", "mpforge"),
    ("assets/banner.png", "second", "mpforge"),
    ("services/extra.js", "first", "plugin 'second'"),  # hooks run last-registered first, as in pluggy
])
def test_a_plugin_file_on_a_path_already_taken_is_refused_naming_the_plugin(project, cli, tmp_path, path, refused,
                                                                           owner):
    """FileTree.add raised ValueError('two outputs claim the same file'): exit 2, no plugin named."""
    spec = project({**MINIMAL_SPEC, "plugins": ["./first.py", "./second.py"]},
                   files={"first.py": FILE_PLUGIN.format(name="first", path="services/extra.js"),
                          "second.py": FILE_PLUGIN.format(name="second", path=path)})
    result = cli("build", spec, "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert (f"error: {spec.parent / f'{refused}.py'}:7: plugin '{refused}' adds the file {path}, which {owner} "
            f"already generates (the plugin must use another path; --disable-plugin {refused} leaves it out)"
            ) in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_asset_removed_during_the_build_is_a_user_error(project, cli):
    """Validation read it; a file gone by the time it is copied is named, not a crash."""
    remover = '''
from pathlib import Path
from builder.plugin_api import hookimpl


@hookimpl
def mpforge_app_json(app_json, spec):
    (Path(spec.root) / "assets" / "banner.png").unlink()
'''
    spec = project({**MINIMAL_SPEC, "plugins": ["./remover.py"]}, files={"remover.py": remover})
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    assert f"error: {spec.parent / 'assets/banner.png'}: cannot read asset file: No such file or directory" \
        in result.stderr


def test_an_assets_folder_path_too_long_for_the_system_is_a_user_error(project, cli):
    """Each name is short, the whole path is not: Path.is_dir raised 'File name too long'."""
    spec = project({**MINIMAL_SPEC, "assets": "x/" * 2100 + "assets"})
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    assert f"error: mpforge.yaml:{line_of(spec, 'assets: x/x/')}:9: assets: assets folder not found: x/x/" \
        in result.stderr
