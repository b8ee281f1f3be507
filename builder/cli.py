"""The `mpforge` command line: a thin click layer over library functions.

Heavy modules (pydantic, jinja2, rich) are imported inside commands so that
`mpforge --help` and `mpforge --version` stay fast.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import click

from . import __version__
from .errors import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, PluginError, UserError


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _report_problems(problems, title: str) -> None:
    from rich.markup import escape

    console = _console(stderr=True)
    for problem in problems:
        style = "yellow" if problem.severity == "warning" else "red"
        console.print(f"[{style}]{problem.severity}[/]: {escape(str(problem))}")
    if title:
        console.print(f"[bold red]{title}[/]")


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn exceptions into the documented exit codes: 1 user error, 2 internal error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        show_traceback = click.get_current_context().find_root().params.get("traceback")
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            count = len(exc.problems)
            _report_problems(exc.problems, f"{count} problem{'s' if count != 1 else ''} found; nothing was written")
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            _console(stderr=True).print("[red]interrupted; the output folder was left as it was[/]")
            sys.exit(EXIT_USER_ERROR)
        except Exception as exc:
            if show_traceback:
                raise
            from rich.markup import escape

            what = str(exc) if isinstance(exc, PluginError) else f"internal error: {type(exc).__name__}: {exc}"
            _console(stderr=True).print(f"[bold red]{escape(what)}[/]\nnothing was written; rerun with "
                                        "--traceback for details and report it")
            sys.exit(EXIT_INTERNAL_ERROR)

    return wrapper


def plugin_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--plugin / --disable-plugin, shared by every command that loads plugins."""
    func = click.option("--disable-plugin", "disabled", multiple=True, metavar="NAME",
                        help="Do not load this plugin (repeatable).")(func)
    func = click.option("--plugin", "extra", multiple=True, metavar="MODULE",
                        help="Also load this plugin: a module name or a .py path (repeatable).")(func)
    return func


def _options(extra: tuple[str, ...], disabled: tuple[str, ...]):
    from .pipeline import PluginOptions

    return PluginOptions(extra=tuple(extra), disabled=tuple(disabled))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpforge")
@click.option("--traceback", is_flag=True, help="Show the full traceback of internal errors.")
def main(traceback: bool) -> None:
    """Build Alipay mini-programs from a merchant spec (mpforge.yaml)."""


@main.command()
@click.argument("target", required=False, metavar="[SPEC|DIR]")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Output folder (default: dist/ beside the spec).")
@plugin_options
@handle_errors
def build(target: str | None, output: str | None, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Build the mini-program: write only changed files, all or nothing."""
    from .pipeline import build as run_build

    prepared, result = run_build(target, output, _options(extra, disabled))
    _report_problems(prepared.warnings, "")
    _print_summary(result)


def _print_summary(result) -> None:
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
@plugin_options
@handle_errors
def check(target: str | None, fmt: str, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Validate the spec and check the output it would produce; write nothing."""
    import json

    from .pipeline import prepare

    options = _options(extra, disabled)
    if fmt == "text":
        prepared = prepare(target, options)
        _report_problems(prepared.warnings, "")
        _console().print(f"ok: {len(prepared.tree)} files would be generated, "
                         f"{len(prepared.plan.pages)} pages")
        return
    try:
        prepared = prepare(target, options)
        report = {"ok": True, "files": len(prepared.tree),
                  "problems": [p.to_dict() for p in prepared.warnings]}
    except UserError as exc:
        report = {"ok": False, "files": 0, "problems": [p.to_dict() for p in exc.problems]}
    click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    if not report["ok"]:
        sys.exit(EXIT_USER_ERROR)


@main.command()
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Write the schema to this file (default: stdout).")
@plugin_options
@handle_errors
def schema(output, extra: tuple[str, ...], disabled: tuple[str, ...]) -> None:
    """Print the JSON Schema of the spec, installed plugins included (for editors)."""
    import json

    from .plugin_manager import Plugins
    from .spec_schema import spec_json_schema

    plugins = Plugins(extra=extra, disabled=disabled)
    output.write(json.dumps(spec_json_schema(plugins), ensure_ascii=False, indent=2) + "\n")


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
    import json

    from .plugin_catalog import describe_plugins

    described = describe_plugins(target, _options(extra, disabled))
    if fmt == "json":
        click.echo(json.dumps(described, ensure_ascii=False, indent=2))
        return
    from rich.markup import escape

    console = _console()
    for item in described:
        console.print(f"[bold]{escape(item['name'])}[/] {escape(item['version'])} ({item['source']}: {escape(item['module'])})")
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
