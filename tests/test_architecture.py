"""The structure behind the pipeline, and the defects it removed.

- Builds keep no state outside their BuildSession: specs built from several threads at
  once get correct, located problems every time.
- The modules of builder/ import each other without a cycle, and lower layers never
  import upper ones.
- Plugin mistakes are reported against the plugin (its name, file and hook), as user
  errors where the way out is the user's; plugin rules declared by a block type are
  checked by the core with located errors.
- The library decides what the CLI used to: skipping a build, the check report, the
  preview's folder; one list of build inputs serves the cache and the dev watcher.
"""

from __future__ import annotations

import ast
import copy
import sys
import threading
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, write_project

from builder import api, pipeline
from builder.errors import UserError
from builder.session import BuildSession
from builder.testing import page_spec

# --- builds in threads ------------------------------------------------------------------

def _threaded_spec(n: int) -> dict:
    """A spec of 30+ pages (so parsed page by page) whose last 30 pages are the same text
    in every spec, after 1 + 3n pages of its own: each spec has the same page items at
    other lines and indexes, one of them with a typo."""
    own = [{"id": f"own{i}", "title": f"Own {i}", "blocks": [{"type": "heading", "text": f"spec {n} page {i}"}]}
           for i in range(1 + 3 * n)]
    shared = [{"id": f"p{i}", "title": f"Page {i}", "blocks": [{"type": "heading", "text": f"page {i}"}]}
              for i in range(30)]
    shared[20]["blocks"][0]["type"] = "headingg"
    return {**copy.deepcopy(MINIMAL_SPEC), "pages": own + shared, "tabbar": None, "assets": None}


def _problems(path: Path, session: BuildSession | None = None) -> list[str]:
    try:
        pipeline.prepare(path, session=session)
    except UserError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_builds_in_threads_report_correct_locations(tmp_path):
    specs = [write_project(tmp_path / f"shop{n}", _threaded_spec(n), with_assets=False) for n in range(4)]
    expected = [_problems(path) for path in specs]
    assert all(len(found) == 1 and "headingg" in found[0] for found in expected)
    assert len({found[0].split(":")[1] for found in expected}) == 4  # four different lines
    results: dict[int, list[tuple[int, list[str]]]] = {n: [] for n in range(4)}

    def run(n: int) -> None:
        # A long-lived session (as mpforge dev or a back-end worker holds one) that sees
        # two specs in turn, so its memo serves the same page items at other places,
        # and a throwaway session now and then.
        session = BuildSession()
        for i in range(16):
            which = (n + i) % 4 if i % 2 else n
            results[n].append((which, _problems(specs[which], session if i % 3 else None)))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    for n in range(4):
        assert len(results[n]) == 16
        wrong = [(which, found) for which, found in results[n] if found != expected[which]]
        assert wrong == [], wrong


def test_one_session_follows_edits_that_move_pages(tmp_path):
    """The session's page memo is placed by copy: the same page text, moved by an edit
    above it, is located at its new line and the memo still serves the old position."""
    spec = _threaded_spec(0)
    path = write_project(tmp_path / "shop", spec, with_assets=False)
    session = BuildSession()
    first = _problems(path, session)
    spec["pages"][1]["blocks"].append({"type": "divider"})  # moves every later page down a few lines
    write_project(tmp_path / "shop", spec, with_assets=False)
    moved = _problems(path, session)
    assert moved == _problems(path) and moved != first
    spec["pages"][1]["blocks"].pop()
    write_project(tmp_path / "shop", spec, with_assets=False)
    assert _problems(path, session) == first


MUTABLE_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "WeakKeyDictionary", "WeakValueDictionary"}


def test_no_module_keeps_mutable_state():
    """The incremental memos used to be module globals (`global _items_by_text`...); now
    a module may hold constants (UPPER_CASE) but no mutable container of its own."""
    found = []
    for path in sorted((REPO / "builder").rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        found += [f"{path.name}:{node.lineno}: global" for node in ast.walk(tree) if isinstance(node, ast.Global)]
        for node in tree.body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            mutable = isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)) or (
                isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) in MUTABLE_CALLS)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            found += [f"{path.name}:{node.lineno}: {n}" for n in names
                      if mutable and not n.isupper() and not n.startswith("__")]
    assert found == []


# --- the import graph ---------------------------------------------------------------------

BUILDER = REPO / "builder"
# Modules every other may use; they import no builder module but each other.
FOUNDATION = {"errors", "spec_models", "clock", "filetree", "options", "spec_file", "axml", "expr", "model"}
STAGES = {"load", "validate", "plan", "render", "check", "write", "commit", "output_folder"}
ABOVE_STAGES = {"pipeline", "api", "session", "cli", "batch", "devserver", "testing", "plugin_catalog", "docs_gen"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(BUILDER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def builder_imports() -> dict[str, set[str]]:
    """module -> builder modules it imports: at the top, inside functions and under
    TYPE_CHECKING alike (a type-only cycle is still a knot)."""
    modules = {_module_name(p): p for p in BUILDER.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.rsplit(".", 1)[0] if path.name != "__init__.py" and "." in name else (
            name if path.name == "__init__.py" else "")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package and package != "__init__" else []
                    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                    stem = ".".join([*base, *([node.module] if node.module else [])])
                elif node.module and node.module.startswith("builder"):
                    stem = node.module.removeprefix("builder").lstrip(".")
                else:
                    continue
                targets = [f"{stem}.{a.name}" if stem else a.name for a in node.names] + [stem]
            elif isinstance(node, ast.Import):
                targets = [a.name.removeprefix("builder").lstrip(".") for a in node.names
                           if a.name.startswith("builder.")]
            found.update(t for t in targets if t in modules and t != name)
        graph[name] = found - {"__init__"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_builder_modules_import_each_other_without_a_cycle():
    graph = builder_imports()
    assert {"pipeline", "model", "hooks", "session", "load"} <= set(graph)  # the scan sees the modules
    assert "model" in graph["validate"] and "hooks" in graph["pipeline"]  # ... and their imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_lower_layers_never_import_upper_ones():
    graph = builder_imports()
    upward = []
    for module, imports in graph.items():
        if module in FOUNDATION:
            upward += [(module, i) for i in imports if i not in FOUNDATION]
        if module in STAGES | {"hooks", "hookspecs", "core_plugin", "core_blocks"}:
            upward += [(module, i) for i in imports if i in ABOVE_STAGES]
    assert upward == []


# The back end's modules that still use a first-party plugin's code directly: the coupon
# model (the claim logic, the runtime content, the merchant's coupons) and the promotion
# plugin's code cache (`mpforge qrcodes`). Routes, sandbox methods and tables come through
# the serve hooks; this list may shrink, never grow.
SERVE_MODULES_USING_PLUGIN_CODE = {"serve.claims", "serve.content", "serve.merchant", "serve.qrcodes"}


def _plugin_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found.update(name for name in names if name.split(".")[0] == "plugins")
    return found


def test_the_back_end_takes_plugins_routes_methods_and_tables_through_hooks():
    """app.py and sandbox.py used to import the coupon plugin and hard-code its routes and
    Alipay methods; now no builder module outside the list imports plugin code."""
    importers = {_module_name(path) for path in sorted(BUILDER.rglob("*.py")) if _plugin_imports(path)}
    assert importers == SERVE_MODULES_USING_PLUGIN_CODE
    assert _plugin_imports(BUILDER / "serve/claims.py") == {"plugins.coupon.models"}  # the scan sees imports


# --- plugin rules and plugin failures -------------------------------------------------------

@pytest.mark.parametrize("block", [{"type": "coupon-list"}, {"type": "my-coupons"}, {"type": "coupon-card",
                                                                                        "coupon": "x"}])
def test_a_block_used_without_its_section_is_a_located_user_error(mpforge_problems, block):
    """coupon-list used to crash (exit 2) and my-coupons to build an app that requires a
    services/coupon.js that was never generated."""
    problems = [p for p in mpforge_problems(page_spec([block])) if p.severity == "error"]
    assert [str(p) for p in problems if "section" in p.message] == [
        f"mpforge.yaml:{problems[0].line}:{problems[0].column}: pages[0].blocks[0].type: block '{block['type']}' "
        "needs a 'coupon' section in the spec (add a 'coupon:' section (docs/spec.md lists its keys), "
        "or remove the block)"]


def test_life_account_blocks_use_the_same_rule(mpforge_problems):
    problems = mpforge_problems(page_spec([{"type": "life-account-follow"}]))
    assert [p.message for p in problems] == ["block 'life-account-follow' needs a 'life_account' section in the spec"]
    assert problems[0].path == "pages[0].blocks[0].type" and problems[0].line is not None


def _local_plugin(project, source: str):
    return project(page_spec([], plugins=["./plug.py"]), files={"plug.py": source}, with_assets=False)


PLUGIN_MISTAKES = {
    "typo in a hook name": (
        "from builder.plugin_api import hookimpl\n\n@hookimpl\ndef mpforge_valdiate(spec):\n    return []\n",
        3, "plugin 'plug': unknown hook 'mpforge_valdiate' (did you mean 'mpforge_validate'?)"),
    "typo in an argument": (
        "from builder.plugin_api import hookimpl\n\n@hookimpl\ndef mpforge_validate(specc):\n    return []\n",
        3, "plugin 'plug': mpforge_validate has an argument 'specc' that the hook does not pass "
           "(did you mean 'spec'?)"),
    "a hook without @hookimpl": (
        "def mpforge_validate(spec):\n    return []\n",
        1, "plugin 'plug': mpforge_validate is not marked with @hookimpl, so it is never called"),
    "a wrapper": (
        "from builder.plugin_api import hookimpl\n\n@hookimpl(wrapper=True)\ndef mpforge_validate(spec):\n"
        "    result = yield\n    return result\n",
        3, "plugin 'plug': mpforge_validate is a hook wrapper, which mpforge does not support"),
}


@pytest.mark.parametrize("mistake", PLUGIN_MISTAKES)
def test_plugin_mistakes_are_located_user_errors(project, cli, mistake):
    """These used to say 'internal error ... report it' (exit 2) or, for a wrapper, raise
    an unattributed AttributeError from the core."""
    source, line, message = PLUGIN_MISTAKES[mistake]
    spec = _local_plugin(project, source)
    result = cli("check", spec)
    assert result.exit_code == 1, result.output
    assert f"error: {spec.parent / 'plug.py'}:{line}: {message}" in result.stderr
    assert "internal error" not in result.stderr


WRONG_RESULTS = {
    "mpforge_validate": ("spec", "'oops'", "returned a str, expected a list of Problem"),
    "mpforge_block_types": ("", "[{'name': 'x'}]", "returned a list of dict, expected a list of BlockType"),
    "mpforge_spec_sections": ("", "{'x': dict}", "returned a dict, expected a dict of section key to pydantic "
                                                 "model class"),
    "mpforge_pages": ("spec", "['about']", "returned a list of str, expected a list of Page"),
    "mpforge_reference_targets": ("spec", "{'page': 'home'}", "returned a dict, expected a dict of reference "
                                                              "kind to a list of ids"),
    "mpforge_app_script": ("spec, render", "'App({})'", "returned a str, expected an AppScript"),
    "mpforge_services": ("plan, spec, render", "{'a.js': 1}", "returned a dict, expected a dict of output path "
                                                              "to text"),
    "mpforge_checks": ("", "[lambda tree: 'bad']", "returned a str, expected a list of Problem"),
}


@pytest.mark.parametrize("hook", WRONG_RESULTS)
def test_a_wrong_result_is_blamed_on_the_plugin(project, cli, hook):
    args, value, message = WRONG_RESULTS[hook]
    spec = _local_plugin(project, f"from builder.plugin_api import hookimpl\n\n@hookimpl\n"
                                  f"def {hook}({args}):\n    return {value}\n")
    result = cli("check", spec)
    assert result.exit_code == 2, result.output
    assert f"plugin 'plug' ({spec.parent / 'plug.py'}) failed in {hook}" in result.stderr
    assert f"TypeError: {message}" in result.stderr
    assert "report it to the author of the 'plug' plugin" in result.stderr


def test_an_installed_plugin_that_fails_to_import_is_named(project, cli, tmp_path, monkeypatch):
    """It used to break every command with an unnamed 'internal error: ModuleNotFoundError'."""
    site = tmp_path / "site"
    dist = site / "agency_broken-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: agency-broken\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[mpforge]\nbroken = agency_broken\n")
    (site / "agency_broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(site))
    spec = project()
    result = cli("check", spec)
    assert result.exit_code == 1
    assert ("installed plugin 'broken' (agency-broken 0.3) failed to import: ModuleNotFoundError: "
            "No module named 'no_such_dependency_xyz' (fix or reinstall it, or leave it out with "
            "--disable-plugin broken)") in result.stderr
    assert cli("check", spec, "--disable-plugin", "broken").exit_code == 0


def test_a_failing_after_build_hook_runs_again_on_the_next_build(project, cli, tmp_path):
    """The cache used to be recorded before the hook: after its failure the next build
    said 'up to date' and the hook never ran again; and the CLI said nothing was written."""
    spec = _local_plugin(project, "from builder.plugin_api import hookimpl\n\n@hookimpl\n"
                                  "def mpforge_after_build(result, spec):\n    raise RuntimeError('upload failed')\n")
    out = tmp_path / "out"
    for _ in range(2):
        result = cli("build", spec, "-o", out)
        assert result.exit_code == 2
        assert "failed in mpforge_after_build: RuntimeError: upload failed" in result.stderr
        assert "nothing was written" not in result.stderr and "up to date" not in result.stdout
    assert (out / "app.json").is_file()


def test_a_spec_saved_during_a_build_is_built_next_time(project, tmp_path):
    """The cache recorded the spec as read after the build, so a save made while the
    build ran was marked up to date. A plugin hook stands in for the editor's save."""
    save = ("from pathlib import Path\nfrom builder.plugin_api import hookimpl\n\n@hookimpl\n"
            "def mpforge_validate(spec):\n    p = spec.loaded.path\n"
            "    p.write_text(p.read_text().replace('Hello', 'Saved meanwhile'))\n    return []\n")
    spec_dict = copy.deepcopy(MINIMAL_SPEC)
    spec_dict["plugins"] = ["./save.py"]
    spec = write_project(tmp_path / "proj", spec_dict, {"save.py": save})
    out = tmp_path / "out"
    first = api.build(spec, out)
    assert "Hello" in first.result.out_dir.joinpath("pages/home/home.js").read_text()
    again = api.build(spec, out)
    assert not again.skipped
    assert "Saved meanwhile" in (out / "pages/home/home.js").read_text()


# --- one list of build inputs; decisions in the library ---------------------------------------

LOCAL_TEMPLATE_PLUGIN = """
from pathlib import Path
from typing import Literal
from builder.plugin_api import Block, BlockType, hookimpl

class StampBlock(Block):
    type: Literal["stamp"]

@hookimpl
def mpforge_block_types():
    return [BlockType(name="stamp", model=StampBlock, template="blocks/stamp.axml")]

@hookimpl
def mpforge_template_dirs():
    return [Path(__file__).parent / "tpl"]
"""


def test_the_dev_watcher_watches_what_the_cache_records(project, tmp_path):
    """A local plugin's templates folder was recorded by the cache but not watched."""
    from builder.devserver import DevServer

    spec = project(page_spec([{"type": "stamp"}], plugins=["./ext/stamp.py"]), with_assets=False,
                   files={"ext/stamp.py": LOCAL_TEMPLATE_PLUGIN, "ext/tpl/blocks/stamp.axml": "<view>stamp</view>\n"})
    prepared = pipeline.prepare(spec)
    local = {(i.path, i.tree) for i in prepared.inputs if i.local}
    root = spec.parent.resolve()
    assert {(root / "ext/tpl", True), (root / "ext/stamp.py", False), (spec.resolve(), False)} <= local
    assert not any(i.local for i in prepared.inputs if i.path == REPO.joinpath("builder").resolve())
    server = DevServer(spec, tmp_path / "out", port=0)
    try:
        plan = server._plan_for(prepared)
        assert plan.relevant(root / "ext/tpl/blocks/stamp.axml") and plan.relevant(root / "ext/stamp.py")
        assert not plan.relevant(tmp_path / "out" / "app.json")
    finally:
        server.httpd.server_close()


def test_build_skips_through_the_library(project, tmp_path):
    spec = project()
    first = api.build(spec, tmp_path / "out")
    again = api.build(spec, tmp_path / "out")
    forced = api.build(spec, tmp_path / "out", force=True)
    assert not first.skipped and first.result.written
    assert again.skipped and again.prepared is None and sorted(again.result.unchanged) == sorted(first.prepared.tree)
    assert not forced.skipped and not forced.result.written


def test_check_report_and_preview_folder_come_from_the_library(project):
    spec = project()
    report = api.check_project(spec)
    assert report.ok and report.files > 0 and report.pages == 2
    assert report.to_dict() == {"ok": True, "files": report.files, "problems": [],
                                "domains": {"web-view": [], "request": []}}
    text = spec.read_text().replace("type: heading", "type: headingg")
    spec.write_text(text)
    bad = api.check_project(spec)
    assert not bad.ok and bad.to_dict()["problems"][0]["path"] == "pages[0].blocks[0].type"
    assert api.default_preview_output(spec) == spec.parent / "preview"
    assert api.default_output(spec) == spec.parent / "dist"


def test_duplicate_ids_share_one_rule(mpforge_problems):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["merchant"]["stores"].append(dict(spec["merchant"]["stores"][0]))
    spec["tabbar"]["items"][1]["page"] = "home"
    messages = {(p.path, p.message, p.hint) for p in mpforge_problems(spec, files={})}
    assert ("merchant.stores[1].id", "duplicate store id 'main'", "first used by merchant.stores[0]") in messages
    assert ("tabbar.items[1].page", "duplicate tab page 'home'", "first used by tabbar.items[0]") in messages
