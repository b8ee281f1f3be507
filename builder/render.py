"""Stage 4, render: the plan -> an in-memory FileTree, through Jinja2 templates.

Templates use `[[ ]]`, `[% %]` and `[# #]` so the `{{ }}` of AXML data binding stays
literal. Template lookup order: the project's `templates/` folder, then plugins', then
the core's. JSON files are `json.dumps` of the plan's dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .errors import Problem, UserError
from .filetree import FileTree, json_text
from .hooks import Hooks
from .model import AppPlan, PagePlan
from .spec_models import Theme


def to_js(value: Any, indent: int = 0) -> Markup:
    """A JS literal of JSON data; a dict gets one line per key, indented by `indent` spaces.

    Each value is compact JSON: json.dumps only uses its C encoder without `indent`,
    and page data is most of the build's output. U+2028/2029 are escaped for older JS
    engines.
    """
    if isinstance(value, dict) and value and indent:
        pad = " " * (indent + 2)
        lines = [f"{pad}{_json(key)}: {_json(item)}" for key, item in value.items()]
        text = "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    else:
        text = _json(value)
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@jinja2.pass_context
def check_printed(context: jinja2.runtime.Context, value: Any) -> Any:
    """Refuse printed values that would turn into broken or live code.

    - A list, dict or tuple prints as a Python repr (`[Markup('"b0"')]`), never valid
      JS or AXML; data goes through the `js` filter. (`[[[ x ]]]` is an easy way to
      print a list by accident: it reads as `[[ [x] ]]`.)
    - Text printed into AXML must not carry `{{` or `}}`: it would become a live
      binding, which escaping cannot prevent. Merchant text is bound from page data.
    """
    where = context.name
    if isinstance(value, (list, dict, tuple)):
        raise jinja2.TemplateRuntimeError(
            f"{where} printed a Python {type(value).__name__} ({str(value)[:40]}); "
            "use the js filter for data, and write [[ x ]] rather than [[[ x ]]]")
    if (str(where).endswith(".axml") and isinstance(value, str) and not isinstance(value, Markup)
            and ("{{" in value or "}}" in value)):
        raise jinja2.TemplateRuntimeError(
            f"{where} printed text containing '{{{{' or '}}}}' ({value[:40]!r}); "
            "put text in page data and bind it with {{key.field}}")
    return value


def template_layers(hooks: Hooks, project_root: Path, *, existing: bool = True) -> list[tuple[str, Path]]:
    """Template folders in lookup order, each named by who provides it (with
    `existing=False`, also the ones not there yet: a build's inputs include them)."""
    layers = [("project", project_root / "templates"), *hooks.template_dirs]
    return [(name, folder) for name, folder in layers if folder.is_dir() or not existing]


def make_environment(hooks: Hooks, project_root: Path) -> jinja2.Environment:
    """The Jinja environment for these template folders, reused while they stay the same.

    Reuse keeps compiled templates across builds in one process (`mpforge dev`, batch
    workers); Jinja reloads a template whose file changed. A file added to the project's
    override folder changes which layer wins, so the folder's listing is part of the key.
    """
    layers = tuple(folder for _, folder in template_layers(hooks, project_root))
    overrides = project_root / "templates"
    listing = tuple(sorted(str(p) for p in overrides.rglob("*"))) if overrides.is_dir() else ()
    return _environment(layers, listing)


# A pure memo: an environment depends only on its folders and the override listing, and
# Jinja environments are safe to share between threads (each checks its templates'
# mtimes before reuse), so builds of any session share compiled templates.
@lru_cache(maxsize=8)
def _environment(layers: tuple[Path, ...], listing: tuple[str, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([_TemplateFiles(folder) for folder in layers]),
        variable_start_string="[[", variable_end_string="]]",
        block_start_string="[%", block_end_string="%]",
        comment_start_string="[#", comment_end_string="#]",
        autoescape=jinja2.select_autoescape(enabled_extensions=("axml", "html"), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        finalize=check_printed,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["js"] = to_js
    return env


class _TemplateFiles(jinja2.FileSystemLoader):
    """Jinja's loader of a template folder. A template that cannot be read (permissions,
    a file removed while building) or is not UTF-8 is the user's to fix, reported at its
    file; not a crash, nor a failure of the plugin whose hook rendered it."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except jinja2.TemplateNotFound:  # an OSError too; ChoiceLoader then asks the next folder
            raise
        except OSError as exc:
            raise UserError([Problem(f"cannot read template: {exc.strerror}", file=exc.filename or template,
                                     hint="check the file's permissions")]) from None
        except UnicodeDecodeError as exc:
            # The file Jinja opened: the first of this loader's folders that has it.
            file = next((str(path) for path in (Path(folder, template) for folder in self.searchpath)
                         if path.is_file()), template)
            line = exc.object.count(b"\n", 0, exc.start) + 1
            raise UserError([Problem(f"template is not UTF-8: invalid byte 0x{exc.object[exc.start]:02x}", file=file,
                                     line=line, hint="save it as UTF-8")]) from None


@dataclass
class RenderMemo:
    """The render stage's part of a BuildSession: the last build's rendered pages (for
    one environment, so one set of template folders), by page id, with the plan and
    theme they were rendered from."""

    env: jinja2.Environment | None = None
    pages: dict[str, tuple[PagePlan, str, dict[str, bytes]]] = field(default_factory=dict)


def render_app(plan: AppPlan, env: jinja2.Environment, hooks: Hooks, memo: RenderMemo | None = None) -> FileTree:
    """The whole output in memory; plugins add app.js members and app files through `hooks`."""
    memo = memo or RenderMemo()
    tree = FileTree()
    spec = plan.spec
    theme = spec.model.app.theme
    tree.add_json("app.json", plan.app_json)
    tree.add_json("mini.project.json", plan.mini_project)

    def render(name: str, **context: Any) -> str:
        return env.get_template(name).render(**context)

    app_scripts = hooks.app_scripts(spec, render)
    tree.add("app.js", env.get_template("app/app.js").render(plan=plan, scripts=app_scripts,
                                                             backend=spec.backend_url is not None))
    # dict.fromkeys: block types of one plugin may share a stylesheet; include it once.
    style_names = dict.fromkeys(bt.style for bt in plan.block_types_used if bt.style)
    styles = [env.get_template(name).render(theme=theme) for name in style_names]
    tree.add("app.acss", env.get_template("app/app.acss").render(theme=theme, styles=styles))
    tree.add("utils/mpforge.js", env.get_template("app/mpforge.js").render())
    if spec.backend_url is not None:
        tree.add("utils/backend.js", env.get_template("app/backend.js").render(
            base=spec.backend_api, openapi=f"{spec.backend_url}/api/v1/openapi.json"))
    # Pages whose templates get exactly what they got last time are not rendered again:
    # the same plan object (plan reuses it while nothing it depends on changed), or else
    # the same content (_page_key, compared only with the last build's page of that id).
    previous = memo.pages if memo.env is env and _templates_unchanged(env) else {}
    rendered: dict[str, tuple[PagePlan, str, dict[str, bytes]]] = {}
    # What a page's files depend on besides its plan: the theme, whether the app window
    # turns pull-to-refresh on (pages then need the handler), whether there is a back end.
    app_refresh = bool(plan.app_json["window"].get("pullRefresh"))
    backend = spec.backend_url is not None
    theme_json = json.dumps([theme.model_dump_json(), app_refresh, backend])
    for page in plan.pages:
        known = previous.get(page.id)
        if known and ((known[0] is page and known[1] == theme_json)
                      or _page_key(known[0], known[1]) == _page_key(page, theme_json)):
            files = known[2]
        else:  # bytes: the tree then holds the very objects the memo keeps
            files = {path: text.encode("utf-8")
                     for path, text in render_page(page, env, theme, app_refresh, backend).items()}
        rendered[page.id] = (page, theme_json, files)
        for path, content in files.items():
            tree.add(path, content)
    memo.env, memo.pages = env, rendered
    for out_path, source in plan.assets.items():
        try:
            tree.add(out_path, source.read_bytes())
        except OSError as exc:  # validation read it: changed since (removed, its permissions)
            raise UserError([Problem(f"cannot read asset file: {exc.strerror}", file=str(source))]) from None
    _add_plugin_files(tree, hooks, hooks.services(plan, spec, render))
    return tree


def _add_plugin_files(tree: FileTree, hooks: Hooks, files: list[tuple[str, str, str | bytes]]) -> None:
    """Plugins' app files, after everything else: a path that is already taken (app.json,
    an asset, another plugin's file) is refused naming the plugin, rather than replacing
    a file or failing as a bug of mpforge's."""
    added_by: dict[str, str] = {}
    for plugin, path, content in files:
        if path in tree:
            owner = f"plugin '{added_by[path]}'" if path in added_by else "mpforge"
            raise UserError([Problem(f"plugin '{plugin}' adds the file {path}, which {owner} already generates",
                                     **hooks.site(plugin, "mpforge_services"),
                                     hint=f"the plugin must use another path; --disable-plugin {plugin} leaves "
                                          "it out")])
        added_by[path] = plugin
        tree.add(path, content)


def render_page(page: PagePlan, env: jinja2.Environment, theme: Theme,
                app_refresh: bool = False, backend: bool = False) -> dict[str, str]:
    """A page's four files, by output path. `backend`: the app has utils/backend.js, which
    block scripts may use for runtime content."""
    # One rendering per script template: block types of a plugin can share one script
    # (e.g. every coupon block uses the same claim handler); `keys` lists their blocks.
    keys_by_script: dict[str, list[str]] = {}
    for placed in page.blocks:
        if placed.block_type.script:
            keys_by_script.setdefault(placed.block_type.script, []).append(placed.key)
    scripts = [env.get_template(name).render(keys=keys, page=page, backend=backend)
               for name, keys in keys_by_script.items()]
    types = [p.block_type for p in page.blocks]
    on_load = list(dict.fromkeys(t.on_load for t in types if t.on_load))
    on_show = list(dict.fromkeys(t.on_show for t in types if t.on_show))
    on_hide = list(dict.fromkeys(t.on_hide for t in types if t.on_hide))
    base = page.path
    return {
        f"{base}.axml": env.get_template("page/page.axml").render(page=page, theme=theme),
        f"{base}.acss": env.get_template("page/page.acss").render(page=page),
        f"{base}.js": env.get_template("page/page.js").render(
            page=page, scripts=scripts, on_load=on_load, on_show=on_show, on_hide=on_hide,
            pull_refresh=page.json.get("pullRefresh", app_refresh)),
        f"{base}.json": json_text(page.json),
    }


def _page_key(page: PagePlan, theme_json: str) -> str:
    """Everything render_page hands the templates: the page plan, its blocks (the
    models and how their types render) and the theme."""
    blocks = [(p.key, p.block_type.name, p.block_type.template, p.block_type.style, p.block_type.script,
               p.block_type.on_load, p.block_type.on_show, p.block_type.on_hide, p.block.model_dump_json())
              for p in page.blocks]
    return json.dumps([page.id, page.title, page.json, page.data, page.share, blocks, theme_json],
                      ensure_ascii=False, default=str)


def _templates_unchanged(env: jinja2.Environment) -> bool:
    """No template this environment has loaded was edited since (Jinja checks mtimes)."""
    return all(template.is_up_to_date for template in env.cache.values()) if env.cache is not None else False
