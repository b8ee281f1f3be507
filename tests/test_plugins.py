"""The plugin system as plugin authors and users meet it: hooks, discovery, failures, kit."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, tree_hashes

from builder import hookspecs
from builder.testing import page_spec

ALL_HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
                   if name.startswith("mpforge_"))
# The back end's hooks (`mpforge serve` and its sandbox call them, never a build) are
# exercised by test_serve_plugins.py's plugin; the build's by LOCAL_PLUGIN here.
SERVE_HOOKS = [name for name in ALL_HOOKS if name.startswith(("mpforge_serve_", "mpforge_sandbox_"))]
BUILD_HOOKS = [name for name in ALL_HOOKS if name not in SERVE_HOOKS]

# A plugin file exercising every hook; RAISE_IN names the hook that fails.
LOCAL_PLUGIN = '''
from pathlib import Path
from typing import Literal

from builder.plugin_api import AppScript, Block, BlockType, Page, Problem, ShortText, StrictModel, hookimpl

PLUGIN_NAME = "{name}"
__version__ = "{version}"
RAISE_IN = {raise_in!r}
CALLS = []


def _maybe_raise(hook):
    CALLS.append(hook)
    if hook == RAISE_IN:
        raise RuntimeError("stamp machine jammed")


class StampSection(StrictModel):
    cups: int
    reward: ShortText


class StampBlock(Block):
    type: Literal["stamp"]
    title: ShortText


@hookimpl
def mpforge_spec_sections():
    _maybe_raise("mpforge_spec_sections")
    return {{"stamps": StampSection}}


@hookimpl
def mpforge_block_types():
    _maybe_raise("mpforge_block_types")
    return [BlockType(name="stamp", model=StampBlock, template="blocks/stamp.axml")]


@hookimpl
def mpforge_template_dirs():
    _maybe_raise("mpforge_template_dirs")
    return [Path(__file__).parent / "plugin_templates"]


@hookimpl
def mpforge_pages(spec):
    _maybe_raise("mpforge_pages")
    section = spec.section("stamps")
    if section is None:
        return []
    return [Page(id="stamps", title="Stamps", blocks=[StampBlock(type="stamp", title=section.reward)])]


@hookimpl
def mpforge_reference_targets(spec):
    _maybe_raise("mpforge_reference_targets")
    return {{"stamp-card": ["classic"] if spec.section("stamps") else []}}


@hookimpl
def mpforge_validate(spec):
    _maybe_raise("mpforge_validate")
    section = spec.section("stamps")
    if section is not None and section.cups > 20:
        return [spec.problem(("stamps", "cups"), "at most 20 cups per card")]
    return []


@hookimpl
def mpforge_app_json(app_json, spec):
    _maybe_raise("mpforge_app_json")
    app_json["window"]["defaultTitle"] += " ☕"


@hookimpl
def mpforge_page_json(page_json, page, spec):
    _maybe_raise("mpforge_page_json")
    page_json["stampPage"] = page.id == "stamps"


@hookimpl
def mpforge_app_script(spec, render):
    _maybe_raise("mpforge_app_script")
    return AppScript(members="  mfStampLaunch(options) {{\\n    this.globalData.stamped = true;\\n  }},\\n",
                     on_launch="mfStampLaunch")


@hookimpl
def mpforge_services(plan, spec):
    _maybe_raise("mpforge_services")
    section = spec.section("stamps")
    return {{"services/stamps.js": "module.exports = {{ cups: %d }};\\n" % section.cups}} if section else {{}}


@hookimpl
def mpforge_checks():
    _maybe_raise("mpforge_checks")
    def no_todo(tree):
        return [Problem("TODO left in output", file=p) for p in tree if p.endswith(".js") and b"TODO" in tree[p]]
    return [no_todo]


@hookimpl
def mpforge_after_build(result, spec):
    _maybe_raise("mpforge_after_build")
    (result.out_dir.parent / "after_build.txt").write_text(str(len(result.written)))
'''

STAMP_AXML = '<view class="stamp"><text>{{[[ key ]].title}}</text></view>\n'


def stamp_project(project, *, raise_in=None, name="stamps", version="1.0.0", extra=None, blocks=None):
    spec = page_spec(blocks if blocks is not None else [{"type": "stamp", "title": "Collect stamps"}],
                     plugins=["./stamp_plugin.py"], stamps={"cups": 5, "reward": "Free latte"}, **(extra or {}))
    files = {"stamp_plugin.py": LOCAL_PLUGIN.format(name=name, version=version, raise_in=raise_in),
             "plugin_templates/blocks/stamp.axml": STAMP_AXML}
    return project(spec, files=files)


def test_every_hook_is_documented():
    for name in ALL_HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 40, f"{name} needs a docstring saying when it runs and what it returns"


def test_this_file_tests_every_hook():
    assert SERVE_HOOKS and BUILD_HOOKS
    for name in BUILD_HOOKS:
        assert f"def {name}(" in LOCAL_PLUGIN, f"{name} has no implementation in the test plugin"
    serve_tests = (REPO / "tests/test_serve_plugins.py").read_text("utf-8")
    for name in SERVE_HOOKS:
        assert f"def {name}(" in serve_tests, f"{name} has no implementation in test_serve_plugins.py's plugin"


def test_local_plugin_contributes_through_every_hook(project, cli, tmp_path):
    spec = stamp_project(project)
    out = tmp_path / "out"
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 0, result.output
    app = json.loads((out / "app.json").read_text())
    assert app["pages"] == ["pages/home/home", "pages/stamps/stamps"]  # mpforge_pages
    assert app["window"]["defaultTitle"] == "Test Shop ☕"  # mpforge_app_json
    assert json.loads((out / "pages/stamps/stamps.json").read_text())["stampPage"] is True  # mpforge_page_json
    assert (out / "services/stamps.js").read_text() == "module.exports = { cups: 5 };\n"  # mpforge_services
    app_js = (out / "app.js").read_text()  # mpforge_app_script
    assert "  onLaunch(options) {\n    this.mfStampLaunch(options);\n  }," in app_js
    assert "  mfStampLaunch(options) {\n    this.globalData.stamped = true;\n  }," in app_js
    assert '<view class="stamp"><text>{{b0.title}}</text></view>' in (out / "pages/home/home.axml").read_text()
    assert '"title": "Free latte"' in (out / "pages/stamps/stamps.js").read_text()  # section -> plugin page
    assert (tmp_path / "after_build.txt").read_text() == str(len(tree_hashes(out)) - 3)  # minus manifest, lock, cache


def test_plugin_section_is_validated_with_locations(project, cli):
    spec = stamp_project(project)
    spec.write_text(spec.read_text().replace("cups: 5", "cups: many"), encoding="utf-8")
    result = cli("check", spec)
    assert result.exit_code == 1
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "cups:" in text)
    assert f"mpforge.yaml:{line}:9: stamps.cups: input should be a valid integer" in result.stderr
    spec.write_text(spec.read_text().replace("cups: many", "cups: 30"), encoding="utf-8")
    result = cli("check", spec)
    assert f"mpforge.yaml:{line}:9: stamps.cups: at most 20 cups per card" in result.stderr  # mpforge_validate


# A second plugin whose block points at the first plugin's stamp cards.
BADGE_PLUGIN = '''
from typing import Literal
from builder.plugin_api import Block, BlockType, Ref, hookimpl, ref_field

PLUGIN_NAME = "badges"


class StampCardRef(Ref):
    kind = "stamp-card"
    provided_by = "stamps"
    defined_in = "stamps"


class BadgeBlock(Block):
    type: Literal["badge"]
    card: ref_field(StampCardRef, "a stamp card id")


@hookimpl
def mpforge_block_types():
    return [BlockType(name="badge", model=BadgeBlock, template="blocks/stamp.axml")]
'''


@pytest.mark.parametrize("card, with_stamps, message", [
    ("classic", True, None),
    ("clasic", True, "pages[0].blocks[1].card: no stamp-card with id 'clasic' in stamps (did you mean 'classic'?)"),
    ("classic", False, "pages[0].blocks[0].card: stamp-card id 'classic' needs the 'stamps' plugin, which is not enabled"),
])
def test_references_across_plugins(project, cli, card, with_stamps, message):
    blocks = [{"type": "stamp", "title": "x"}] if with_stamps else []
    spec = stamp_project(project, blocks=[*blocks, {"type": "badge", "card": card}])
    if not with_stamps:  # a spec for a machine without the stamps plugin
        spec.write_text(spec.read_text().split("stamps:\n")[0].replace("- ./stamp_plugin.py", "- ./badge_plugin.py"))
    (spec.parent / "badge_plugin.py").write_text(BADGE_PLUGIN)
    result = cli("check", spec, "--plugin", spec.parent / "badge_plugin.py")
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1 and message in result.stderr, result.output


def test_plugin_check_stops_the_build(project, cli, tmp_path):
    spec = stamp_project(project)
    (spec.parent / "templates/app").mkdir(parents=True)
    (spec.parent / "templates/app/app.js").write_text("// TODO\nApp({});\n")
    result = cli("build", spec, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "app.js: TODO left in output" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("hook", BUILD_HOOKS)
def test_hook_failure_names_the_plugin_and_keeps_output(project, cli, tmp_path, hook):
    spec = stamp_project(project)
    out = tmp_path / "out"
    assert cli("build", spec, "-o", out).exit_code == 0
    before = tree_hashes(out)
    spec.write_text(spec.read_text().replace("Free latte", "Free cake"), encoding="utf-8")
    plugin_file = spec.parent / "stamp_plugin.py"
    plugin_file.write_text(plugin_file.read_text().replace("RAISE_IN = None", f"RAISE_IN = {hook!r}"))
    result = cli("build", spec, "-o", out)
    assert result.exit_code == 2
    assert f"plugin 'stamps' ({plugin_file}) failed in {hook}: RuntimeError: stamp machine jammed" in result.stderr
    assert "Traceback" not in result.output
    if hook == "mpforge_after_build":
        # It runs after writing: the new build is complete, and the failure is still reported.
        assert "Free cake" in (out / "pages/stamps/stamps.js").read_text()
    else:
        assert tree_hashes(out) == before


def test_block_data_failure_names_plugin_and_location(project, cli):
    spec = stamp_project(project)
    plugin_file = spec.parent / "stamp_plugin.py"
    plugin_file.write_text(plugin_file.read_text().replace(
        "    title: ShortText\n\n\n@hookimpl", "    title: ShortText\n\n    def page_data(self, ctx):\n"
        "        raise KeyError('stamp')\n\n\n@hookimpl"))
    result = cli("build", spec)
    assert result.exit_code == 2
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "type: stamp" in text)
    assert (f"mpforge.yaml:{line}:5: pages[0].blocks[0]: plugin 'stamps' ({plugin_file}) failed in page_data "
            "of block 'stamp': KeyError: 'stamp'") in result.stderr
    assert "[bold red]" not in result.stderr


def test_traceback_flag_shows_the_trace(project):
    spec = stamp_project(project, raise_in="mpforge_pages")
    result = subprocess.run([sys.executable, "-m", "builder", "--traceback", "check", str(spec)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "stamp machine jammed" in result.stderr


def test_disable_plugin(project, cli):
    spec = stamp_project(project)
    result = cli("check", spec, "--disable-plugin", "stamps")
    assert result.exit_code == 1
    assert "unknown block type 'stamp'" in result.stderr
    result = cli("check", spec, "--disable-plugin", "stampz")
    assert result.exit_code == 1 and "no plugin named 'stampz' (did you mean 'stamps'?)" in result.stderr
    result = cli("check", spec, "--disable-plugin", "core")
    assert result.exit_code == 1 and "core plugin cannot be disabled" in result.stderr


def test_plugin_from_command_line(project, cli, tmp_path):
    spec = project(page_spec([{"type": "stamp", "title": "Hi"}]),
                   files={"plugin_templates/blocks/stamp.axml": STAMP_AXML,
                          "stamp_plugin.py": LOCAL_PLUGIN.format(name="stamps", version="1", raise_in=None)})
    assert cli("check", spec).exit_code == 1
    result = cli("check", spec, "--plugin", spec.parent / "stamp_plugin.py")
    assert result.exit_code == 0, result.output


def test_plugin_by_module_name_from_the_spec_folder(project, cli):
    spec = stamp_project(project)
    (spec.parent / "stamp_plugin.py").rename(spec.parent / "local_stamp_blocks.py")
    spec.write_text(spec.read_text().replace("./stamp_plugin.py", "local_stamp_blocks"), encoding="utf-8")
    assert cli("check", spec).exit_code == 0


@pytest.mark.parametrize("entry, message", [
    ("./missing.py", "plugin file not found: ./missing.py"),
    ("no_such_module_xyz", "cannot import plugin 'no_such_module_xyz'"),
    ("./broken.py", "plugin './broken.py' failed to import: ZeroDivisionError"),
])
def test_plugin_loading_errors_are_located(project, cli, entry, message):
    spec = project(page_spec([], plugins=["./ok.py", entry]),
                   files={"ok.py": "", "broken.py": "x = 1 / 0\n"})
    result = cli("check", spec)
    assert result.exit_code == 1
    line = spec.read_text().splitlines().index(f"- {entry}") + 1
    assert f"mpforge.yaml:{line}:3: plugins[1]: {message}" in result.stderr


def test_requires_versions(project, cli):
    spec = stamp_project(project, version="1.4.0", extra={"requires": {"stamps": ">=1.0,<2", "core": ">=0.1"}})
    assert cli("check", spec).exit_code == 0
    spec = stamp_project(project, version="0.9.1", extra={"requires": {"stamps": ">=1.0"}})
    result = cli("check", spec)
    assert result.exit_code == 1
    assert "requires.stamps: plugin 'stamps' is version 0.9.1, the spec requires >=1.0" in result.stderr
    spec = stamp_project(project, extra={"requires": {"loyalty": ">=1.0", "stamps": "one"}})
    result = cli("check", spec)
    assert "requires.loyalty: the spec requires plugin 'loyalty' (>=1.0), which is not installed" in result.stderr
    assert "requires.stamps: invalid version range 'one'" in result.stderr


def test_entry_point_plugins_are_discovered(project, cli, tmp_path, monkeypatch):
    """A real installed-package layout: a .dist-info with an `mpforge` entry point on sys.path."""
    site = tmp_path / "site"
    (site / "agency_stamps-2.3.0.dist-info").mkdir(parents=True)
    (site / "agency_stamps-2.3.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: agency-stamps\nVersion: 2.3.0\n")
    (site / "agency_stamps-2.3.0.dist-info/entry_points.txt").write_text("[mpforge]\nstamps = agency_stamps\n")
    (site / "agency_stamps.py").write_text(LOCAL_PLUGIN.format(name="stamps", version="2.3.0", raise_in=None)
                                           .replace('Path(__file__).parent / "plugin_templates"', repr(str(tmp_path / "tpl"))))
    (tmp_path / "tpl/blocks").mkdir(parents=True)
    (tmp_path / "tpl/blocks/stamp.axml").write_text(STAMP_AXML)
    monkeypatch.syspath_prepend(str(site))
    spec = project(page_spec([{"type": "stamp", "title": "Hi"}], requires={"stamps": ">=2"},
                             stamps={"cups": 3, "reward": "Cake"}))
    assert cli("check", spec).exit_code == 0
    listed = {p["name"]: p for p in json.loads(cli("plugins", spec, "--format", "json").stdout)}
    assert listed["stamps"]["source"] == "entry point" and listed["stamps"]["version"] == "2.3.0"
    assert listed["stamps"]["blocks"] == ["stamp"] and listed["stamps"]["sections"] == ["stamps"]
    assert listed["stamps"]["pages"] == ["stamps"]


def test_plugins_command_lists_core_and_local(project, cli):
    spec = stamp_project(project)
    listed = json.loads(cli("plugins", spec, "--format", "json").stdout)
    assert [p["name"] for p in listed] == ["core", "coupon", "life_account", "membership", "ordering", "promotion",
                                           "stamps"]
    core, coupon, _, _, _, _, stamps = listed
    assert coupon["source"] == "entry point" and coupon["blocks"] == ["coupon-list", "coupon-card",
                                                                      "coupon-banner", "my-coupons"]
    assert core["source"] == "core" and "banner" in core["blocks"] and "mpforge_block_types" in core["hooks"]
    assert stamps == {"name": "stamps", "version": "1.0.0", "source": "spec", "module": stamps["module"],
                      "sections": ["stamps"], "blocks": ["stamp"], "pages": ["stamps"], "hooks": BUILD_HOOKS}
    table = cli("plugins", spec)
    assert table.exit_code == 0 and "stamps" in table.stdout


def test_duplicate_block_type_names_both_plugins(project, cli):
    spec = stamp_project(project)
    other = (spec.parent / "stamp_plugin.py").read_text().replace('PLUGIN_NAME = "stamps"', 'PLUGIN_NAME = "other"')
    (spec.parent / "other_plugin.py").write_text(other.replace('{"stamps": StampSection}', "{}"))
    result = cli("check", spec, "--plugin", spec.parent / "other_plugin.py")
    assert result.exit_code == 1
    assert "block type 'stamp' is defined by both plugin" in result.stderr
    assert "'stamps'" in result.stderr and "'other'" in result.stderr
    # Located at the hook of the plugin called second (pluggy calls the last registered
    # first), naming the other plugin's file.
    stamps_source = (spec.parent / "stamp_plugin.py").read_text().splitlines()
    hook_line = stamps_source.index("def mpforge_block_types():")  # the line above: its @hookimpl
    assert f"error: {spec.parent / 'stamp_plugin.py'}:{hook_line}: block type 'stamp' is defined by both plugin " \
           f"'other' ({spec.parent / 'other_plugin.py'}) and plugin 'stamps'" in result.stderr


def test_templates_list_and_eject(project, cli):
    spec = stamp_project(project)
    listing = cli("templates", "list", spec)
    assert listing.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in listing.stdout.splitlines() if line.count("│") >= 3}
    assert "stamps" in rows["blocks/stamp.axml"] and "core" in rows["blocks/heading.axml"]
    assert not any(name.startswith(("starters/", "scaffolds/")) for name in rows)
    result = cli("templates", "eject", "blocks/heading.axml", spec)
    assert result.exit_code == 0, result.output
    ejected = spec.parent / "templates/blocks/heading.axml"
    assert ejected.read_text() == (REPO / "templates/blocks/heading.axml").read_text()
    row = next(line for line in cli("templates", "list", spec).stdout.splitlines() if "blocks/heading.axml" in line)
    assert "project" in row and "core" in row
    again = cli("templates", "eject", "blocks/heading.axml", spec)
    assert again.exit_code == 1 and "already overrides" in again.stderr
    typo = cli("templates", "eject", "blocks/headin.axml", spec)
    assert typo.exit_code == 1 and "did you mean 'blocks/heading.axml'?" in typo.stderr


def test_scaffolded_plugin_builds_and_passes_its_own_tests(cli, project, tmp_path):
    # Named so its block type is not the membership plugin's stamp-card.
    folder = tmp_path / "mpforge-punch-card"
    assert cli("plugin", "new", "punch-card", "-o", folder).exit_code == 0
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", str(folder)], capture_output=True, text=True,
                           cwd=folder, env={**__import__("os").environ, "PYTHONPATH": str(folder)})
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout
    spec = project(page_spec([{"type": "punch-card", "title": "Stamp 5 cups", "link": "home"}]))
    result = cli("build", spec, "--plugin", folder / "mpforge_punch_card/__init__.py", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    axml = (tmp_path / "out/pages/home/home.axml").read_text()
    assert '<text class="mpforge_punch_card-title">{{b0.title}}</text>' in axml


def test_plugin_new_rejects_bad_names(cli, tmp_path):
    result = cli("plugin", "new", "Stamp Card", "-o", tmp_path / "x")
    assert result.exit_code == 1 and "invalid plugin name" in result.stderr
    assert not (tmp_path / "x").exists()


def test_scaffold_source_is_valid_python():
    compile(textwrap.dedent((REPO / "templates/scaffolds/plugin/__PACKAGE__/__init__.py").read_text()
                            .replace("__CLASS__", "X").replace("__BLOCK__", "x")), "scaffold", "exec")


# --- plugins that print, exit or share a name ------------------------------------------------


def test_what_plugins_print_goes_to_stderr_and_json_reports_stay_readable(project, cli):
    """A print() in a plugin went to stdout, into the middle of `check --format json`."""
    spec = stamp_project(project)
    plugin_file = spec.parent / "stamp_plugin.py"
    source = plugin_file.read_text().replace("    CALLS.append(hook)\n", "    CALLS.append(hook)\n    print('in', hook)\n")
    source = source.replace("class StampBlock(Block):\n", "print('importing')\n\n\nclass StampBlock(Block):\n")
    source = source.replace("    title: ShortText\n\n\n@hookimpl", "    title: ShortText\n\n    def page_data(self, ctx):\n"
                            "        print('page data')\n        return ctx.to_data(self)\n\n\n@hookimpl")
    plugin_file.write_text(source)
    result = cli("check", spec, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
    for printed in ("importing", "in mpforge_validate", "in mpforge_services", "page data"):
        assert printed in result.stderr
    listed = cli("plugins", spec, "--format", "json")
    assert "stamps" in [p["name"] for p in json.loads(listed.stdout)] and "importing" in listed.stderr


@pytest.mark.parametrize("hook", BUILD_HOOKS)
def test_sys_exit_in_a_hook_is_that_plugins_failure(project, cli, tmp_path, hook):
    """sys.exit(0) in a hook ended mpforge with exit 0, having built nothing."""
    spec = stamp_project(project)
    plugin_file = spec.parent / "stamp_plugin.py"
    plugin_file.write_text(plugin_file.read_text().replace('raise RuntimeError("stamp machine jammed")', "sys.exit(0)")
                           .replace("from pathlib import Path\n", "import sys\nfrom pathlib import Path\n")
                           .replace("RAISE_IN = None", f"RAISE_IN = {hook!r}"))
    result = cli("build", spec, "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert f"plugin 'stamps' ({plugin_file}) failed in {hook}: SystemExit: 0" in result.stderr
    assert "report it to the author of the 'stamps' plugin" in result.stderr


@pytest.mark.parametrize("where", ["page_data", "a check", "import"])
def test_sys_exit_in_plugin_code_outside_hooks_is_that_plugins_failure(project, cli, where):
    spec = stamp_project(project)
    plugin_file = spec.parent / "stamp_plugin.py"
    source = plugin_file.read_text().replace("from pathlib import Path\n", "import sys\nfrom pathlib import Path\n")
    if where == "page_data":
        source = source.replace("    title: ShortText\n\n\n@hookimpl", "    title: ShortText\n\n"
                                "    def page_data(self, ctx):\n        sys.exit(0)\n\n\n@hookimpl")
    elif where == "a check":
        source = source.replace("    def no_todo(tree):\n", "    def no_todo(tree):\n        sys.exit(0)\n")
    else:
        source = source.replace("RAISE_IN = None\n", "RAISE_IN = None\nsys.exit(0)\n")
    plugin_file.write_text(source)
    result = cli("check", spec)
    assert result.exit_code == 2, result.output
    if where == "import":  # named by its file and its entry in the spec: PLUGIN_NAME was never set
        line = spec.read_text().splitlines().index("- ./stamp_plugin.py") + 1
        assert (f"mpforge.yaml:{line}:3: plugins[0]: plugin 'stamp_plugin' ({plugin_file}) failed in its import: "
                "SystemExit: 0") in result.stderr
    else:
        failed_in = "page_data of block 'stamp'" if where == "page_data" else "mpforge_checks"
        assert f"plugin 'stamps' ({plugin_file}) failed in {failed_in}: SystemExit: 0" in result.stderr


def test_two_plugins_of_one_name_are_located_with_both_files(project, cli):
    """The error named the modules but no file and no line."""
    spec = stamp_project(project)
    first = spec.parent / "stamp_plugin.py"
    second = spec.parent / "more" / "stamp_plugin.py"
    second.parent.mkdir()
    second.write_text(first.read_text())
    spec.write_text(spec.read_text().replace("- ./stamp_plugin.py", "- ./stamp_plugin.py\n- ./more/stamp_plugin.py"))
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    line = spec.read_text().splitlines().index("- ./more/stamp_plugin.py") + 1
    assert f"error: mpforge.yaml:{line}:3: plugins[1]: two plugins are named 'stamps': " in result.stderr
    assert f"({first}) and " in result.stderr and f"({second}) (rename one: set PLUGIN_NAME in its module)" \
        in result.stderr
    # From the command line: at the second plugin's PLUGIN_NAME.
    spec.write_text(spec.read_text().replace("\n- ./more/stamp_plugin.py", ""))
    result = cli("check", spec, "--plugin", second)
    name_line = second.read_text().splitlines().index('PLUGIN_NAME = "stamps"') + 1
    assert f"error: {second}:{name_line}: two plugins are named 'stamps': " in result.stderr


@pytest.mark.parametrize("order", ["nested", "overlapping"])
def test_sending_plugin_output_to_stderr_survives_overlapping_builds(order, monkeypatch):
    """Two builds in threads may enter and leave in any order; stdout must end where it was
    (contextlib.redirect_stdout, left first by the build that entered first, would leave
    stdout pointing at stderr)."""
    import io

    from builder.hooks import plugin_output_to_stderr

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    first, second = plugin_output_to_stderr(), plugin_output_to_stderr()
    first.__enter__()
    second.__enter__()
    print("from a plugin")
    (second if order == "nested" else first).__exit__(None, None, None)
    (first if order == "nested" else second).__exit__(None, None, None)
    assert sys.stdout is out and out.getvalue() == "" and err.getvalue() == "from a plugin\n"


def test_a_disabled_plugins_block_type_names_the_plugin(project, cli):
    spec = project(page_spec([{"type": "coupon-list"}]))
    result = cli("check", spec, "--disable-plugin", "coupon")
    assert result.exit_code == 1
    assert ("pages[0].blocks[0].type: block type 'coupon-list' comes from the 'coupon' plugin, which is disabled "
            "(drop --disable-plugin coupon, or remove the block)") in result.stderr
    assert "did you mean" not in result.stderr
