"""Nothing written outside the output folder, a user's own files never touched.

mpforge replaces or removes only files it created (the manifest records each with its
sha256); a user's file where the build would write, a generated file edited by hand, a
link planted to redirect a write, an output folder that is a system folder or the
project's own, and a FIFO where mpforge keeps its records are each refused, before
anything is written, with the file named. Faults while writing are in test_faults.py.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, tree_hashes, write_project

from builder import commit
from builder.output_folder import CACHE, JOURNAL, LOCK, MANIFEST


def drop_banner(spec_path: Path) -> None:
    """Take the banner out of the project (block and asset): the next build no longer
    writes assets/banner.png, so it removes the one it wrote before."""
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["pages"][0]["blocks"] = [b for b in spec["pages"][0]["blocks"] if b["type"] != "banner"]
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    (spec_path.parent / "assets" / "banner.png").unlink()


def refused(result, *messages: str) -> None:
    assert result.exit_code == 1, result.output
    for message in messages:
        assert message in result.stderr, result.stderr
    assert "nothing was written" in result.stderr and "Traceback" not in result.output


# --- a user's files are never adopted, replaced or removed -----------------------------------------


def test_a_users_file_where_the_build_writes_is_refused_even_with_the_same_bytes(cli, project, tmp_path):
    """It used to be adopted (listed in the manifest as generated), and deleted by the
    next build that no longer wrote it."""
    spec = project()
    out = tmp_path / "out"
    (out / "assets").mkdir(parents=True)
    logo = out / "assets" / "banner.png"
    logo.write_bytes((spec.parent / "assets" / "banner.png").read_bytes())  # the very bytes the build writes
    notes = out / "notes.txt"
    notes.write_text("mine", encoding="utf-8")
    before = tree_hashes(out)
    refused(cli("build", spec, "-o", out), f"{logo}: is not a file mpforge created",
            "never replaces a file it did not create")
    refused(cli("build", spec, "-o", out, "--force"), f"{logo}: is not a file mpforge created")  # not even so
    assert tree_hashes(out) == before and not (out / LOCK).exists()  # nothing written, not even the lock
    logo.unlink()
    assert cli("build", spec, "-o", out).exit_code == 0
    # A user's file beside the output stays, through a build that removes generated files too.
    drop_banner(spec)
    assert cli("build", spec, "-o", out).exit_code == 0
    assert notes.read_text(encoding="utf-8") == "mine" and not logo.exists()


def test_every_users_file_in_the_way_is_listed(cli, project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["files"]["app.js"], manifest["files"]["pages/home/home.axml"]  # as if a user had made them
    (out / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (out / "app.js").write_text("// mine\n", encoding="utf-8")
    before = tree_hashes(out)
    refused(cli("build", spec, "-o", out), f"{out / 'app.js'}: is not a file mpforge created",
            f"{out / 'pages/home/home.axml'}: is not a file mpforge created", "2 problems found")
    assert tree_hashes(out) == before


def test_a_users_file_where_a_generated_folder_goes_is_refused(cli, project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    out.mkdir()
    (out / "pages").write_text("my notes", encoding="utf-8")
    refused(cli("build", spec, "-o", out), f"{out / 'pages'}: is not a file mpforge created")
    assert sorted(p.name for p in out.iterdir()) == ["pages"]


def test_a_fifo_where_a_generated_file_goes_is_refused_without_hanging(project, tmp_path, cli):
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    (out / "app.js").unlink()
    os.mkfifo(out / "app.js")
    result = subprocess.run([sys.executable, "-m", "builder", "build", str(spec), "-o", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"{out / 'app.js'}: was edited since" in result.stderr, result.stderr


def test_a_manifest_from_before_hashes_were_recorded_still_owns_its_files(cli, project, tmp_path):
    """Output folders built before the manifest recorded hashes list their files plainly."""
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    files = sorted(json.loads((out / MANIFEST).read_text())["files"])
    (out / MANIFEST).write_text(json.dumps({"generator": "mpforge", "files": files}), encoding="utf-8")
    drop_banner(spec)
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 0, result.output
    assert not (out / "assets/banner.png").exists()
    assert isinstance(json.loads((out / MANIFEST).read_text())["files"], dict)  # rewritten with hashes


# --- hand edits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["edited", "replaced by a link"])
def test_a_hand_edit_is_refused_until_force(cli, project, tmp_path, how):
    """Hand edits used to be overwritten silently by the next build."""
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    edited = out / "pages/home/home.acss"
    if how == "edited":
        edited.write_text(edited.read_text() + ".mine { color: red; }\n", encoding="utf-8")
    else:
        (tmp_path / "mine.acss").write_text(".mine {}\n", encoding="utf-8")
        edited.unlink()
        edited.symlink_to(tmp_path / "mine.acss")
    data = copy.deepcopy(MINIMAL_SPEC)
    data["pages"][0]["blocks"][0]["text"] = "Changed"
    spec.write_text(json.dumps(data), encoding="utf-8")
    before = tree_hashes(out)
    refused(cli("build", spec, "-o", out), f"{edited}: was edited since mpforge generated it",
            "'mpforge build --force' overwrites (or removes) it", "template override")
    assert tree_hashes(out) == before
    result = cli("build", spec, "-o", out, "--force")
    assert result.exit_code == 0, result.output
    assert not edited.is_symlink() and ".mine" not in edited.read_text()
    if how == "replaced by a link":
        assert (tmp_path / "mine.acss").read_text() == ".mine {}\n"  # the link went, not what it named


def test_an_edited_file_the_build_would_remove_is_refused_until_force(cli, project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    (out / "assets/banner.png").write_bytes(b"a retouched banner")
    drop_banner(spec)
    refused(cli("build", spec, "-o", out), f"{out / 'assets/banner.png'}: was edited since mpforge generated it")
    assert (out / "assets/banner.png").read_bytes() == b"a retouched banner"
    assert cli("build", spec, "-o", out, "--force").exit_code == 0
    assert not (out / "assets/banner.png").exists()


def test_an_unchanged_build_over_an_edit_also_refuses(cli, project, tmp_path):
    """The up-to-date check sees the edit (the file's size and time), the write refuses."""
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    (out / "app.acss").write_text("/* mine */\n", encoding="utf-8")
    refused(cli("build", spec, "-o", out), f"{out / 'app.acss'}: was edited")


# --- links -----------------------------------------------------------------------------------------------


def test_a_lock_file_that_is_a_link_is_refused_and_not_followed(cli, project, tmp_path):
    """`.mpforge.lock` used to be opened through a planted link (creating the file it named)."""
    spec = project()
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    (out / LOCK).symlink_to(victim)
    refused(cli("build", spec, "-o", out), f"{out / LOCK}: is a symbolic link where mpforge keeps its own record")
    assert not victim.exists() and sorted(p.name for p in out.iterdir()) == [LOCK]


def test_links_planted_at_predictable_temp_names_redirect_nothing(cli, project, tmp_path):
    """Temp files were named after the target and the process id, and opened through any
    link found there: a planted link made the build write outside the folder."""
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    victims = tmp_path / "victims"
    victims.mkdir()
    planted = {out / f".app.json..mpforge-tmp-{os.getpid()}": victims / "app.json",
               out / "pages/home" / f".home.axml..mpforge-tmp-{os.getpid()}": victims / "home.axml",
               out / f"{CACHE}.{os.getpid()}": victims / "cache"}
    for link, target in planted.items():
        link.symlink_to(target)
    data = copy.deepcopy(MINIMAL_SPEC)
    data["app"]["name"] = "Renamed"
    data["pages"][0]["blocks"][0]["text"] = "Changed"
    spec.write_text(json.dumps(data), encoding="utf-8")
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 0, result.output
    assert list(victims.iterdir()) == []
    assert "Renamed" in (out / "app.json").read_text()
    assert all(link.is_symlink() for link in planted)  # not ours: left alone


def test_an_output_folder_that_is_a_link_is_refused(cli, project, tmp_path):
    spec = project()
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real, target_is_directory=True)
    refused(cli("build", spec, "-o", tmp_path / "out"), f"{tmp_path / 'out'}: the output folder is a symbolic link")
    assert list(real.iterdir()) == []


def test_a_manifest_that_is_a_link_is_refused(cli, project, tmp_path):
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    real = tmp_path / "manifest.json"
    (out / MANIFEST).rename(real)
    (out / MANIFEST).symlink_to(real)
    refused(cli("build", spec, "-o", out, "--force"), f"{out / MANIFEST}: is a symbolic link")


# --- folders a build must not write into ---------------------------------------------------------


@pytest.mark.parametrize("where", ["/", "/tmp", "/usr", "home", "project", "above the project", "assets",
                                   "inside assets"])
def test_an_output_folder_that_is_not_a_build_folder_is_refused(cli, project, tmp_path, monkeypatch, where):
    spec = project()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    out = {"home": home, "project": spec.parent, "above the project": tmp_path, "assets": spec.parent / "assets",
           "inside assets": spec.parent / "assets" / "out"}.get(where, Path(where))
    message = {"project": "holds the project's own files", "above the project": "holds the project's own files",
               "assets": "is inside the spec's assets folder", "inside assets": "is inside the spec's assets folder",
               }.get(where, "is a system folder")
    project_before = tree_hashes(tmp_path)
    refused(cli("build", spec, "-o", out), f"{out}: the output folder {message}", "build into a folder of its own")
    assert tree_hashes(tmp_path) == project_before and not (out / LOCK).exists()
    assert not (spec.parent / "assets" / "out").exists()


def test_the_default_output_folder_and_one_inside_the_project_are_fine(cli, project):
    spec = project()
    assert cli("build", spec).exit_code == 0 and (spec.parent / "dist" / "app.json").is_file()
    assert cli("build", spec, "-o", spec.parent / "build" / "alipay").exit_code == 0


# --- special files where mpforge keeps its records ------------------------------------------------------


@pytest.mark.parametrize("record", [LOCK, MANIFEST, CACHE, JOURNAL])
def test_a_fifo_where_a_record_goes_is_refused_without_hanging(project, tmp_path, cli, record):
    """A FIFO in place of the manifest, cache or lock used to hang the build forever."""
    spec = project()
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    (out / record).unlink(missing_ok=True)
    os.mkfifo(out / record)
    args = ["--force"] if record == MANIFEST else []  # else the up-to-date check answers first
    result = subprocess.run([sys.executable, "-m", "builder", "build", str(spec), "-o", str(out), *args], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"{out / record}: is a FIFO (named pipe) where mpforge keeps its own record" in result.stderr
    assert "remove it and build again" in result.stderr


def test_a_failed_build_into_a_new_folder_leaves_no_trace(cli, project, tmp_path, monkeypatch):
    """The folders and the lock file a build made go again when it fails."""
    spec = project()
    out = tmp_path / "new" / "out"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(commit, "open", disk_full, raising=False)
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert not (tmp_path / "new").exists()


def test_nothing_outside_the_output_folder_changes_through_a_build(cli, tmp_path):
    """Every file and folder around the output (the project, its parent) is as before:
    no temp file, record or lock lands beside the output folder."""
    spec = write_project(tmp_path / "proj", MINIMAL_SPEC)

    def around() -> dict[str, bytes | None]:
        return {p.relative_to(tmp_path).as_posix(): p.read_bytes() if p.is_file() else None
                for p in tmp_path.rglob("*") if p.relative_to(tmp_path).parts[0] != "out"}

    before = around()
    assert cli("build", spec, "-o", tmp_path / "out").exit_code == 0
    assert around() == before
    drop_banner(spec)
    before = around()
    assert cli("build", spec, "-o", tmp_path / "out").exit_code == 0
    assert around() == before
