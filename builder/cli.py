"""The `mpforge` command line: a thin click layer over library functions.

Heavy modules (pydantic, jinja2, rich) are imported inside commands so that
`mpforge --help` and `mpforge --version` stay fast.
"""

from __future__ import annotations

import codecs
import functools
import io
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .errors import (
    EXIT_INTERNAL_ERROR,
    EXIT_USER_ERROR,
    OutputError,
    PluginError,
    PluginLoadError,
    Problem,
    SpecError,
    UserError,
    WriteRefused,
)
from .options import PluginOptions

if TYPE_CHECKING:  # imported inside the commands that use them, to keep start-up fast
    from rich.console import Console

    from .batch import Outcome
    from .write import WriteResult


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _report_problems(problems: Iterable[Problem], title: str, indent: str = "") -> None:
    from rich.markup import escape

    console = _console(stderr=True)
    for problem in problems:
        style = "yellow" if problem.severity == "warning" else "red"
        console.print(f"{indent}[{style}]{problem.severity}[/]: {escape(str(problem))}")
    if title:
        console.print(f"[bold red]{title}[/]")


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn exceptions into the documented exit codes: 1 user error, 2 internal error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        show_traceback = click.get_current_context().find_root().params.get("traceback")
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise  # usage errors found inside a command: click prints them with the usage (exit 2)
        except UserError as exc:
            count = len(exc.problems)
            title = f"{count} problem{'s' if count != 1 else ''} found"
            # Only these come before anything is written; a write failure says itself what
            # became of the output, and an after-build hook fails once it is written.
            if isinstance(exc, (SpecError, OutputError, PluginLoadError, WriteRefused)):
                title += "; nothing was written"
            _report_problems(exc.problems, title)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            _console(stderr=True).print("[red]interrupted; the output folder holds the previous build or, if "
                                        "the interrupt came as it finished, the complete new one; never a mix[/]")
            sys.exit(EXIT_USER_ERROR)
        except Exception as exc:
            if show_traceback:
                raise
            from rich.markup import escape

            # Not "nothing was written": an after-build hook fails once the output is written.
            if isinstance(exc, PluginError):
                what, report = str(exc), f"report it to the author of the '{exc.plugin}' plugin"
            else:
                what, report = f"internal error: {type(exc).__name__}: {exc}", "report it"
            _console(stderr=True).print(f"[bold red]{escape(what)}[/]\nrerun with --traceback for details and "
                                        f"{report}")
            sys.exit(EXIT_INTERNAL_ERROR)

    return wrapper


def plugin_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--plugin / --disable-plugin, shared by every command that loads plugins."""
    func = click.option("--disable-plugin", "disabled", multiple=True, metavar="NAME",
                        help="Do not load this plugin (repeatable).")(func)
    func = click.option("--plugin", "extra", multiple=True, metavar="MODULE",
                        help="Also load this plugin: a module name or a .py path (repeatable).")(func)
    return func


def _options(extra: tuple[str, ...], disabled: tuple[str, ...]) -> PluginOptions:
    return PluginOptions(extra=tuple(extra), disabled=tuple(disabled))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpforge")
@click.option("--traceback", is_flag=True, help="Show the full traceback of internal errors.")
def main(traceback: bool) -> None:
    """Build Alipay mini-programs from a merchant spec (mpforge.yaml)."""


def entry() -> None:
    """The `mpforge` console script: run a command, then leave without tearing the
    interpreter down. Freeing a large build's objects one by one at exit took a third
    of a 1000-page build's time; the operating system reclaims them at once. (mypy
    exits the same way.) Output is flushed first; mpforge registers no exit handlers.
    """
    _tolerate_unencodable_output()
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # e.g. `mpforge plugins | head`
            pass
    os._exit(code if isinstance(code, int) else 0)


def _tolerate_unencodable_output() -> None:
    """Let text the terminal cannot encode degrade instead of failing. On an ASCII
    terminal (PYTHONIOENCODING=ascii; the C locale without Python's UTF-8 mode) a
    successful build's '→' or a merchant's name raised UnicodeEncodeError: exit 2 after
    the output was written. Escapes (港 -> \\u6e2f) keep every character recoverable, as
    Python already does on stderr. A UTF-8 stream keeps its handler: it can encode all
    but the lone surrogates that stand for undecodable bytes, which that handler is for.
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and codecs.lookup(stream.encoding).name != "utf-8":
            stream.reconfigure(errors="backslashreplace")


def _echo_json(data: Any) -> None:
    """JSON on stdout. Where stdout's encoding cannot carry every character (an ASCII
    terminal), JSON's own escapes keep it the same JSON in pure ASCII; click.echo alone
    would write UTF-8 bytes the stream did not declare."""
    import json

    text = json.dumps(data, ensure_ascii=False, indent=2)
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2)
    click.echo(text)


@main.command()
@click.argument("targets", nargs=-1, metavar="[SPEC|DIR]...")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Output folder (default: dist/ beside the spec); with several specs, each "
                   "builds into OUTPUT/<name>/.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With several specs: how many to build at once, in separate processes.")
@click.option("--force", is_flag=True,
              help="Build even when nothing changed since the last build, and overwrite generated files edited "
                   "by hand.")
@plugin_options
@handle_errors
def build(targets: tuple[str, ...], output: str | None, jobs: int, force: bool, extra: tuple[str, ...],
          disabled: tuple[str, ...]) -> None:
    """Build the mini-program: write only changed files, all or nothing.

    Several specs (e.g. specs/*.yaml) build as a batch: one failing spec does not stop
    the others, and the exit code is 1 if any failed.
    """
    options = _options(extra, disabled)
    if len(targets) > 1:
        _build_batch(list(targets), output, jobs, force, options)
        return
    from .api import build as run_build

    outcome = run_build(targets[0] if targets else None, output, options, force=force)
    _report_problems(outcome.warnings, "")
    if outcome.skipped:
        _console().print(f"up to date: nothing changed since the last build of {outcome.out_dir} "
                         "(--force rebuilds)")
    else:
        _print_summary(outcome.result)


def _build_batch(targets: list[str], output: str | None, jobs: int, force: bool,
                 options: PluginOptions) -> None:
    from pathlib import Path

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .batch import run_batch

    if output is None:
        raise click.UsageError("building several specs needs -o/--output: each builds into OUTPUT/<name>/")
    console = _console(stderr=True)
    # No refresh thread: the worker processes are forked after the bar exists.
    with Progress(TextColumn("building"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, auto_refresh=False) as progress:
        task = progress.add_task("build", total=len(targets))

        def done(outcome: Outcome) -> None:
            progress.advance(task)
            progress.refresh()

        outcomes = run_batch(targets, Path(output), jobs, options, force, done)
    failed = [o for o in outcomes if not o.ok]
    for outcome in outcomes:
        if outcome.problems or outcome.internal_error:
            console.print(f"[bold]{escape(outcome.target)}[/]")
        _report_problems(outcome.problems, "", indent="  ")
        if outcome.internal_error:
            console.print(f"  [bold red]internal error: {escape(outcome.internal_error)}[/]")
    built = len(outcomes) - len(failed)
    written = sum(o.written for o in outcomes)
    summary = f"{built} of {len(outcomes)} specs built into {output} ({written} files written)"
    if failed:
        console.print(f"[bold red]{summary}; failed: {escape(', '.join(o.target for o in failed))}[/]")
        sys.exit(EXIT_INTERNAL_ERROR if any(o.internal_error for o in failed) else EXIT_USER_ERROR)
    console.print(f"[green]{summary}[/]")


def _print_summary(result: WriteResult) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"mpforge build → {result.out_dir}", title_justify="left")
    table.add_column("status")
    table.add_column("files", justify="right")
    table.add_column("examples")
    for label, paths in (("written", result.written), ("unchanged", result.unchanged), ("removed", result.removed)):
        shown = ", ".join(paths[:3]) + (f", … (+{len(paths) - 3})" if len(paths) > 3 else "")
        table.add_row(label, str(len(paths)), shown)
    console.print(table)


@main.command()
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--external", is_flag=True,
              help="Also check the output with third-party tools run by Node.js: Alipay's AXML parser, "
                   "WeChat's wcc, TypeScript with Alipay's API typings, node --check.")
@click.option("--tools", type=click.Path(file_okay=False), metavar="DIR",
              help="With --external: the tool folder, installed with `npm ci --prefix DIR` (default: "
                   "$MPFORGE_EXTERNAL_TOOLS, else tests/external of the source checkout).")
@plugin_options
@handle_errors
def check(target: str | None, fmt: str, external: bool, tools: str | None, extra: tuple[str, ...],
          disabled: tuple[str, ...]) -> None:
    """Validate the spec and check the output it would produce; write nothing."""
    from .api import check_project

    if tools and not external:
        raise click.UsageError("--tools goes with --external")
    report = check_project(target, _options(extra, disabled), external=external, tools=tools)
    if fmt == "json":
        _echo_json(report.to_dict())
        if not report.ok:
            sys.exit(EXIT_USER_ERROR)
        return
    if not report.ok and report.external:
        count = len([p for p in report.problems if p.severity == "error"])
        _report_problems(report.problems, f"{count} problem{'s' if count != 1 else ''} found by "
                                          "the external checks in the output")
        sys.exit(EXIT_USER_ERROR)
    if not report.ok:
        raise UserError(report.problems)
    _report_problems(report.problems, "")
    for kind, hosts in report.domains.items():
        if hosts:  # the console's whitelists: 服务器域名 (request) and H5 域名 (web-view)
            _console().print(f"{kind} domains to whitelist: {', '.join(hosts)}")
    summary = f"{report.files} files would be generated, {report.pages} pages"
    if external:
        summary += "; the external checks passed"
    _console().print(f"ok: {summary}")


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write the schema to this file (default: stdout).")
@plugin_options
@handle_errors
def schema(output: str, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Print the JSON Schema of the spec, installed plugins included (for editors)."""
    import json
    from pathlib import Path

    from .pipeline import load_plugins
    from .spec_schema import spec_json_schema

    hooks = load_plugins(_options(extra, disabled))
    document = spec_json_schema(hooks)
    if output == "-":
        _echo_json(document)
        return
    # A path rather than click.File: a folder is a usage error before anything runs, and
    # the file is created only once the schema is ready.
    try:
        Path(output).write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from exc


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--template", "template", default="basic", show_default=True,
              help="Starter to copy (see templates/starters).")
@handle_errors
def new(directory: str, template: str) -> None:
    """Create a working starter project in DIRECTORY."""
    from pathlib import Path

    from .starters import create_project

    spec_path = create_project(Path(directory), template)
    _console().print(f"created {spec_path}\nnext: mpforge build {directory}")


@main.command()
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@plugin_options
@handle_errors
def plugins(target: str | None, fmt: str, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """List plugins and what each provides (with a spec: its local plugins and pages too)."""
    from .plugin_catalog import describe_plugins

    described = describe_plugins(target, _options(extra, disabled))
    if fmt == "json":
        _echo_json(described)
        return
    from rich.markup import escape

    console = _console()
    for item in described:
        console.print(f"[bold]{escape(item['name'])}[/] {escape(item['version'])} "
                      f"({item['source']}: {escape(item['module'])})")
        for label in ("sections", "blocks", "pages", "hooks"):
            if item[label]:
                console.print(f"  {label}: {escape(', '.join(item[label]))}")


@main.group()
def templates() -> None:
    """List or override the templates a build uses."""


@templates.command("list")
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@plugin_options
@handle_errors
def templates_list(target: str | None, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Every template, the layer it comes from, and what it overrides."""
    from rich.table import Table

    from .plugin_catalog import list_templates

    table = Table("template", "from", "overrides")
    for name, layer, hidden in list_templates(target, _options(extra, disabled)):
        table.add_row(name, layer, ", ".join(hidden))
    _console().print(table)


@templates.command("eject")
@click.argument("name")
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@plugin_options
@handle_errors
def templates_eject(name: str, target: str | None, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Copy template NAME into the project's templates/ folder to override it."""
    from .plugin_catalog import eject_template

    path = eject_template(name, target, _options(extra, disabled))
    _console().print(f"copied to {path}; edit it there, it now overrides the original")


@main.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.option("-o", "--output", "directory", type=click.Path(file_okay=False),
              help="Folder to create (default: mpforge-NAME).")
@handle_errors
def plugin_new(name: str, directory: str | None) -> None:
    """Scaffold a pip-installable plugin package with one example block and tests."""
    from pathlib import Path

    from .scaffold import scaffold_plugin

    folder = scaffold_plugin(name, Path(directory or f"mpforge-{name}"))
    _console().print(f"created {folder}\nnext: pip install -e {folder} && pytest {folder}")


# --- preview: `mpforge dev` and `mpforge preview` (builder/devserver.py, builder/preview/) ---


@main.command()
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Output folder for the mini-program (default: dist/ beside the spec).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to serve on (default: 8750 or the next free one; 0: any free port).")
@click.option("--host", default=None, help="Address to serve on (default: 127.0.0.1 only).")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in the default browser.")
@click.option("--no-backend", is_flag=True,
              help="Do not run the spec's back end (with a sandbox for Alipay) for the preview's requests.")
@plugin_options
@handle_errors
def dev(target: str | None, output: str | None, port: int | None, host: str | None, open_browser: bool,
        no_backend: bool, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Build, serve a live preview of every page, and rebuild on every save.

    The browser shows the generated pages in a phone frame and updates in place after
    each save; a failed build shows its located errors over the last good build. The
    pages' scripts run on an emulation of the mini-program API; when the spec has a back
    end and an app id, it runs too, with a sandbox standing in for Alipay, so claiming a
    coupon or following the life account goes through the whole flow.
    """
    from .devserver import run_dev_server

    def log(text: str) -> None:
        click.echo(text)

    run_dev_server(target, output, _options(extra, disabled), host=host, port=port,
                   open_browser=open_browser, log=log, backend=not no_backend)


@main.command()
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Folder for the preview (default: preview/ beside the spec).")
@plugin_options
@handle_errors
def preview(target: str | None, output: str | None, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Write a static HTML preview of every page, to open in a browser without mpforge."""
    from pathlib import Path

    from .api import default_preview_output
    from .pipeline import prepare
    from .preview import write_static_preview

    prepared = prepare(target, _options(extra, disabled))
    _report_problems(prepared.warnings, "")
    out = Path(output) if output else default_preview_output(prepared.spec.loaded.path)
    index = write_static_preview(prepared.tree, out, prepared.spec.assets_dir)
    _console().print(f"preview of {len(prepared.plan.pages)} pages written: {index}")


# --- the back end: `mpforge serve` (builder/serve/) ---


@main.command()
@click.argument("targets", nargs=-1, required=True, metavar="SPEC|DIR...")
@click.option("--database", "database_url", envvar="MPFORGE_DATABASE_URL", metavar="URL",
              help="sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB (default: a SQLite file beside the "
                   "first spec; also $MPFORGE_DATABASE_URL).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--sandbox", is_flag=True,
              help="Stand a sandbox gateway in for Alipay (auth codes sandbox-user-<name> log in); "
                   "otherwise each app's keys come from $MPFORGE_ALIPAY_APP_PRIVATE_KEY_<appid> and "
                   "$MPFORGE_ALIPAY_PUBLIC_KEY_<appid>.")
@handle_errors
def serve(targets: tuple[str, ...], database_url: str | None, host: str, port: int, sandbox: bool) -> None:
    """Serve the merchants' back end: login, coupon claims, events, content (/api/v1/{appid}/...).

    One process serves every given spec. $MPFORGE_SERVE_SECRET (at least 32 bytes) signs
    session tokens; without it a restart logs users out, and processes behind one load
    balancer must share it.
    """
    from .serve.server import run_serve

    secret = os.environ.get("MPFORGE_SERVE_SECRET", "").encode("utf-8") or None
    if secret is not None and len(secret) < 32:
        raise click.UsageError("MPFORGE_SERVE_SECRET must be at least 32 bytes")
    run_serve(list(targets), database_url, host=host, port=port, sandbox=sandbox, secret=secret)


@main.command()
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Folder for the print files (default: qrcodes/ beside the spec; qrcodes-sandbox/ with --sandbox).")
@click.option("--sandbox", is_flag=True,
              help="Ask a sandbox gateway in this process instead of Alipay: no keys needed, and the codes are "
                   "not real.")
@click.option("--force", is_flag=True, help="Ask Alipay again even for codes already made.")
@handle_errors
def qrcodes(target: str | None, output: str | None, sandbox: bool, force: bool) -> None:
    """Make the real Alipay mini-program code of every promotion entry point.

    Calls alipay.open.app.qrcode.create with the app's keys from
    $MPFORGE_ALIPAY_APP_PRIVATE_KEY_<appid> and $MPFORGE_ALIPAY_PUBLIC_KEY_<appid>, only for
    entry points it has no code for yet (the codes are kept in .mpforge/ beside the spec),
    and writes <id>.png, an A6 card <id>.svg and entry-points.csv. Later builds show the
    real codes in promotion/qr/ instead of the drafts.
    """
    from .serve.qrcodes import run_qrcodes

    result = run_qrcodes(target, output, sandbox=sandbox, force=force)
    console = _console()
    if result.sandbox:
        console.print("[bold yellow]sandbox codes: made by a sandbox gateway, not by Alipay; they open nothing and "
                      "are not for printing[/]")
    console.print(f"{len(result.codes)} codes written to {result.out_dir} ({result.calls} asked from "
                  f"{'the sandbox' if result.sandbox else 'Alipay'}, {len(result.codes) - result.calls} from the "
                  f"cache); list: {result.csv}")


@main.command()
@click.argument("target", metavar="SPEC|DIR")
@click.option("--to", "to_url", required=True, metavar="URL",
              help="The base URL of the mpforge serve that serves the app (https; http only to 127.0.0.1 or "
                   "localhost).")
@click.option("--restore", type=click.IntRange(min=0), metavar="N",
              help="Show version N again (as a new version; 0: the spec's own content as the server has it).")
@click.option("--list", "list_versions", is_flag=True, help="List the published versions.")
@handle_errors
def publish(target: str, to_url: str, restore: int | None, list_versions: bool) -> None:
    """Publish the spec's runtime content (its coupons' words) to a running mpforge serve.

    The server shows the newest version at once, without a new build of the mini-program.
    The token is $MPFORGE_PUBLISH_TOKEN_<appid>, the same value as where the server runs.
    """
    from .serve.publish import run_publish

    click.echo(run_publish(target, to_url, restore=restore, list_versions=list_versions))
