"""`mpforge check --external`: third-party checks of the output, run by Node.

The tools are an npm folder (in a source checkout: `tests/external/`, pinned by its
package-lock.json) whose `check.js` runs Alipay's AXML parser, WeChat's template compiler,
TypeScript with Alipay's API typings and `node --check` over an output folder. mpforge
does not ship them; this module finds the folder, says how to install it when it is
missing, and runs check.js over a checked file tree written to a temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import Problem, UserError
from .filetree import FileTree

ENV_VAR = "MPFORGE_EXTERNAL_TOOLS"
SCRIPT = "check.js"
# What check.js loads; `npm ci` in the tool folder installs them.
PACKAGES = ("@alipay/axml-transverter", "miniprogram-compiler", "typescript", "@mini-types/alipay")
TIMEOUT = 300  # seconds
# check.js prints one line per problem: "error: FILE[:LINE:COL]: [check] message".
_LINE = re.compile(r"^error: (?P<file>[^:]+?)(?::(?P<line>\d+):(?P<column>\d+))?: \[(?P<check>\w+)\] (?P<message>.*)$")


@dataclass
class ExternalResult:
    ok: bool
    problems: list[Problem]  # located in the output (file relative to the output folder)
    output: str  # everything check.js printed


def checkout_tools() -> Path | None:
    """`tests/external` of the source checkout mpforge runs from, if it is one."""
    folder = Path(__file__).resolve().parent.parent / "tests" / "external"
    return folder if (folder / SCRIPT).is_file() and (folder / "package.json").is_file() else None


def find_tools(option: str | Path | None = None) -> Path:
    """The tool folder: --tools, else $MPFORGE_EXTERNAL_TOOLS, else the checkout's tests/external."""
    if option:
        return Path(option)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    found = checkout_tools()
    if found is None:
        raise UserError([Problem(
            "no external tool folder: this mpforge is not a source checkout with tests/external/",
            hint=f"pass --tools DIR or set {ENV_VAR} to a folder holding mpforge's tests/external "
                 "(check.js, package.json, package-lock.json), installed with `npm ci --prefix DIR`")])
    return found


def tools_problem(tools: Path) -> str | None:
    """Why the external checks cannot run with `tools` (and how to fix it), or None."""
    node = shutil.which("node")
    if node is None:
        return ("the external checks need Node.js (18 or later) on PATH: install it "
                "(e.g. `apt-get install nodejs`), then run `npm ci --prefix " + str(tools) + "`")
    if not (tools / SCRIPT).is_file():
        return (f"{tools} is not the external tool folder (no {SCRIPT}): pass --tools DIR or set {ENV_VAR} "
                "to mpforge's tests/external folder")
    missing = [p for p in PACKAGES if not (tools / "node_modules" / p / "package.json").is_file()]
    if missing:
        return (f"the external tools are not installed in {tools} (missing {', '.join(missing)}): "
                f"run `npm ci --prefix {tools}`")
    return None


def run_check_script(out_dir: Path, tools: Path, timeout: int = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`node check.js OUT_DIR` in the tool folder; exit 0 ok, 1 problems, 2 broken setup."""
    return subprocess.run([shutil.which("node") or "node", str(tools / SCRIPT), str(out_dir)],
                          capture_output=True, text=True, timeout=timeout)


def check_tree(tree: FileTree, tools: Path) -> ExternalResult:
    """Write `tree` to a temporary folder and run check.js over it."""
    problem = tools_problem(tools)
    if problem:
        raise UserError([Problem(problem)])
    with tempfile.TemporaryDirectory(prefix="mpforge-external-") as tmp:
        out = Path(tmp) / "output"
        for path, data in tree.items():
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            result = run_check_script(out, tools)
        except subprocess.TimeoutExpired:
            raise UserError([Problem(f"the external checks took longer than {TIMEOUT} s and were stopped")]) from None
        output = (result.stdout + result.stderr).replace(str(out), "<output>")
    if result.returncode not in (0, 1):
        raise UserError([Problem(f"the external checks could not run (exit {result.returncode}): {output.strip()}",
                                 hint=f"reinstall the tools with `npm ci --prefix {tools}`")])
    problems = [_problem(line) for line in output.splitlines() if line.startswith("error: ")]
    if result.returncode == 1 and not problems:
        problems = [Problem(f"the external checks failed: {output.strip()}")]
    return ExternalResult(ok=result.returncode == 0, problems=problems, output=output)


def _problem(line: str) -> Problem:
    match = _LINE.match(line)
    if not match:
        return Problem(line[len("error: "):])
    return Problem(f"{match['check']}: {match['message']}", file=match["file"],
                   line=int(match["line"]) if match["line"] else None,
                   column=int(match["column"]) if match["column"] else None)
