"""Third-party checks of the generated mini-program (issue 4): tests/external/check.js runs
Alipay's AXML parser, WeChat's wcc, TypeScript with Alipay's API typings and `node --check`
over every sample and over a kitchen-sink spec using every block and option; each check
is shown to fail on a corrupted copy, naming the file. The tools are pinned npm packages:
`npm ci --prefix tests/external` installs them (.ci/run does).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kitchen_sink
import pytest
from helpers import REPO, SAMPLES

from builder import external_check
from builder.pipeline import prepare

TOOLS = REPO / "tests" / "external"
SAMPLE_NAMES = sorted(p.name for p in SAMPLES.iterdir() if (p / "mpforge.yaml").is_file())


@pytest.fixture(scope="session")
def tools() -> Path:
    """The installed tool folder; missing Node or node_modules fail (CI installs both)."""
    problem = external_check.tools_problem(TOOLS)
    if problem:
        pytest.fail(f"{problem} (.ci/run does this before the tests)", pytrace=False)
    return TOOLS


def run_check(out: Path, tools: Path) -> subprocess.CompletedProcess:
    return external_check.run_check_script(out, tools, timeout=120)


def assert_passes(out: Path, tools: Path) -> None:
    result = run_check(out, tools)
    assert result.returncode == 0, f"external checks failed on {out}:\n{result.stderr}{result.stdout}"
    assert "check.js: ok" in result.stdout


@pytest.fixture(scope="module")
def kitchen_sink_out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitchen-sink")
    tree = kitchen_sink.build_kitchen_sink(root / "project")
    return kitchen_sink.write_tree(tree, root / "out")


def test_kitchen_sink_uses_every_block_and_option(tmp_path):
    prepared = prepare(kitchen_sink.write_kitchen_sink_project(tmp_path / "project"))
    assert kitchen_sink.coverage_gaps(prepared.spec.model) == []
    # Only review findings the sink means to have: its followers' coupon in public blocks, rewards
    # anyone may claim,
    # the customer-service button (enterprise accounts only), and what review says of any web-view.
    assert [(w.rule, w.message) for w in prepared.warnings] == [
        (None, "the ordering pages offer dine-in and takeaway only: they cannot take a delivery address yet"),
        (None, "coupon 'cash-5' is a reward, but its audience is new_customers: it can be claimed for nothing, "
               "without points or stamps"),
        (None, "coupon 'rate-85' is a reward, but its audience is members: it can be claimed for nothing, without "
               "points or stamps"),
        ("review/contact-button-enterprise", "the contact-button works for enterprise (企业) Alipay accounts only, "
                                             "with 在线客服 turned on; elsewhere it shows nothing"),
        (None, "coupon.backend is ignored: the top-level backend is used"),
        (None, "claim_path is no longer used"),
        ("review/reward-coupon-public", "shows follow-reward coupon swap to everyone"),
        ("review/reward-coupon-public", "shows follow-reward coupon swap to everyone"),
        ("review/web-view", "web-view opens 1 domain: www.example.com")]
    types = {block.type for page in prepared.spec.pages for block in page.blocks}
    assert types == set(prepared.spec.block_types)


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_sample_passes_the_external_checks(sample, tools, tmp_path):
    out = kitchen_sink.write_tree(prepare(SAMPLES / sample).tree, tmp_path / "out")
    assert_passes(out, tools)


def test_kitchen_sink_passes_the_external_checks(kitchen_sink_out, tools):
    assert_passes(kitchen_sink_out, tools)


# (case, file in the kitchen-sink output, text to replace (None: append), replacement, check, message pattern)
BROKEN = [
    ("js-syntax-error", "pages/about/about.js", "onTapLink(event) {", "onTapLink(event) {{",
     "node", r"SyntaxError"),
    ("misspelled-my-api", "services/coupon.js", "my.showLoading(", "my.showLoadin(",
     "tsc", r"TS2551: Property 'showLoadin' does not exist on type 'typeof my'. Did you mean 'showLoading'\?"),
    ("wrong-argument-type", "utils/mpforge.js", "my.makePhoneCall({ number: link.number })",
     "my.makePhoneCall({ number: 4008200000 })", "tsc", r"TS2322: Type 'number' is not assignable to type 'string'"),
    ("else-without-if", "pages/about/about.axml", '<view class="mf-page">',
     '<view class="mf-page">\n<view a:else>no if before me</view>', "axml", r"a:else should match condition context"),
    ("bad-expression", "pages/home/home.axml", "{{b0.slides}}", "{{b0.slides +}}", "axml", r"Unexpected token"),
    ("unclosed-tag", "pages/deals/deals.axml", "</text>", "", "wcc", r"expect end-tag `text`"),
    ("mismatched-end-tag", "pages/life/life.axml", "</view>", "</text>", "wcc", r"expect end-tag `view`"),
    ("stray-end-tag", "pages/mine/mine.axml", None, "</view>\n", "wcc", r"get tag end without start"),
    ("html-entity", "pages/about/about.axml", '<view class="mf-page">', '<view class="mf-page">\n<text>a&nbsp;b</text>',
     "axml", r"E2046.*HTML entities"),
]


@pytest.fixture(scope="module")
def broken_runs(kitchen_sink_out, tools, tmp_path_factory) -> dict[str, tuple[str, subprocess.CompletedProcess]]:
    """check.js over one corrupted copy of the kitchen sink per case, all run at once."""
    root = tmp_path_factory.mktemp("broken")
    started = {}
    for case, path, old, new, *_ in BROKEN:
        broken = root / case
        shutil.copytree(kitchen_sink_out, broken)
        source = (broken / path).read_text(encoding="utf-8")
        if old is None:
            source += new
        elif old in source:
            source = source.replace(old, new, 1)
        else:
            started[case] = f"{path} no longer contains {old!r}: update this case", None
            continue
        (broken / path).write_text(source, encoding="utf-8")
        started[case] = "", subprocess.Popen(["node", str(tools / external_check.SCRIPT), str(broken)],
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = {}
    for case, (problem, process) in started.items():
        if process is None:
            runs[case] = problem, None
            continue
        stdout, stderr = process.communicate(timeout=300)
        runs[case] = "", subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return runs


@pytest.mark.parametrize("case,path,old,new,check,pattern", BROKEN, ids=[case[0] for case in BROKEN])
def test_each_check_fails_naming_the_file(case, path, old, new, check, pattern, broken_runs):
    problem, result = broken_runs[case]
    assert not problem, problem
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    line = re.compile(rf"^error: {re.escape(path)}(:\d+:\d+)?: \[{check}\] .*{pattern}")
    assert any(line.search(e) for e in errors), "\n".join(errors)
    assert all(e.startswith(f"error: {path}:") for e in errors), "only the corrupted file is blamed:\n" + "\n".join(errors)


def test_check_js_without_node_modules_says_how_to_install(tmp_path):
    if shutil.which("node") is None:
        pytest.fail("node is required (.ci/run installs it)")
    bare = tmp_path / "tools"
    bare.mkdir()
    for name in ("check.js", "mpforge-env.d.ts", "package.json", "package-lock.json"):
        shutil.copy(TOOLS / name, bare / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.js").write_text("1;\n")
    result = subprocess.run(["node", str(bare / "check.js"), str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"npm ci --prefix {bare}" in result.stderr
    assert external_check.tools_problem(bare) == (
        f"the external tools are not installed in {bare} (missing {', '.join(external_check.PACKAGES)}): "
        f"run `npm ci --prefix {bare}`")


# --- mpforge check --external ---------------------------------------------------------------

def test_cli_check_external_passes_a_sample(cli, tools):
    result = cli("check", SAMPLES / "linli-fresh", "--external", "--tools", tools)
    assert result.exit_code == 0, result.output
    assert "the external checks passed" in result.stdout


def test_cli_check_external_reports_problems_in_the_output(cli, project, tools, monkeypatch):
    spec = project()
    heading = (REPO / "templates" / "blocks" / "heading.axml").read_text(encoding="utf-8")
    override = spec.parent / "templates" / "blocks" / "heading.axml"
    override.parent.mkdir(parents=True)
    override.write_text(heading.replace("<text a:if=", "<text a:else>x</text>\n  <text a:if=", 1), encoding="utf-8")
    assert cli("check", spec).exit_code == 0  # mpforge's own checks do not see it

    monkeypatch.setenv(external_check.ENV_VAR, str(tools))
    result = cli("check", spec, "--external")
    assert result.exit_code == 1
    assert re.search(r"error: pages/home/home\.axml:\d+:\d+: axml: a:else should match", result.stderr), result.stderr
    assert "1 problem found by the external checks" in result.stderr

    report = cli("check", spec, "--external", "--format", "json")
    assert report.exit_code == 1
    assert '"file": "pages/home/home.axml"' in report.stdout and '"ok": false' in report.stdout


def test_cli_check_external_without_tools_is_a_user_error(cli, tmp_path, monkeypatch):
    result = cli("check", SAMPLES / "linli-fresh", "--external", "--tools", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path} is not the external tool folder" in result.stderr

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(TOOLS / "check.js", bare / "check.js")
    result = cli("check", SAMPLES / "linli-fresh", "--external", "--tools", bare)
    assert result.exit_code == 1
    assert f"npm ci --prefix {bare}" in result.stderr

    monkeypatch.setenv("PATH", str(tmp_path / "no-node-here"))
    result = cli("check", SAMPLES / "linli-fresh", "--external", "--tools", TOOLS)
    assert result.exit_code == 1
    assert "the external checks need Node.js" in result.stderr


def test_cli_tool_folder_defaults_to_the_checkout(monkeypatch):
    monkeypatch.delenv(external_check.ENV_VAR, raising=False)
    assert external_check.find_tools() == TOOLS
    monkeypatch.setenv(external_check.ENV_VAR, "/somewhere/else")
    assert external_check.find_tools() == Path("/somewhere/else")
    assert external_check.find_tools("/explicit") == Path("/explicit")


def test_cli_outside_a_checkout_asks_for_the_tool_folder(cli, monkeypatch):
    monkeypatch.delenv(external_check.ENV_VAR, raising=False)
    monkeypatch.setattr(external_check, "checkout_tools", lambda: None)
    result = cli("check", SAMPLES / "linli-fresh", "--external")
    assert result.exit_code == 1
    assert "pass --tools DIR or set MPFORGE_EXTERNAL_TOOLS" in result.stderr
