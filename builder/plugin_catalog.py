"""What the loaded plugins provide: `mpforge plugins` and `mpforge templates`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .errors import Problem, SpecError, UserError, did_you_mean
from .hooks import Hooks
from .load import load_spec
from .model import LoadedSpec
from .options import PluginOptions
from .pipeline import load_plugins
from .render import template_layers
from .spec_file import find_spec
from .validate import validate_spec

# Folders of the core templates/ that are not build templates.
NOT_BUILD_TEMPLATES = ("starters", "scaffolds")


def _load(target: str | None, options: PluginOptions) -> tuple[Hooks, LoadedSpec | None]:
    """Plugins for the spec at `target`, or for the current folder if it holds one."""
    try:
        path = find_spec(target)
    except SpecError:
        if target:
            raise
        path = None
    loaded = load_spec(path) if path else None
    return load_plugins(options, loaded), loaded


def describe_plugins(target: str | None, options: PluginOptions) -> list[dict[str, Any]]:
    plugins, loaded = _load(target, options)
    pages: dict[str, list[str]] = {}
    if loaded is not None:
        spec = validate_spec(loaded, plugins.block_types, plugins.sections)
        for plugin, page in plugins.pages(spec):
            pages.setdefault(plugin, []).append(page.id)
    described = []
    for name, info in plugins.info.items():
        described.append({
            "name": name,
            "version": info.version,
            "source": info.source,
            "module": info.module,
            "sections": sorted(k for k, owner in plugins.section_owners.items() if owner == name),
            "blocks": [b for b, owner in plugins.block_owners.items() if owner == name],
            "pages": pages.get(name, []),
            "hooks": plugins.hooks_of(name),
        })
    return described


def _root(loaded: LoadedSpec | None) -> Path:
    return loaded.root if loaded else Path.cwd()


def _template_index(plugins: Hooks, root: Path) -> dict[str, list[tuple[str, Path]]]:
    """Template name -> the (layer, folder) pairs holding it, in lookup order."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for layer, folder in template_layers(plugins, root):
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and not (layer == "core" and name.split("/")[0] in NOT_BUILD_TEMPLATES):
                found.setdefault(name, []).append((layer, folder))
    return dict(sorted(found.items()))


def list_templates(target: str | None, options: PluginOptions) -> list[tuple[str, str, list[str]]]:
    """(template name, layer it is taken from, layers it hides), sorted by name."""
    plugins, loaded = _load(target, options)
    return [(name, holders[0][0], [layer for layer, _ in holders[1:]])
            for name, holders in _template_index(plugins, _root(loaded)).items()]


def eject_template(name: str, target: str | None, options: PluginOptions) -> Path:
    """Copy the template `name` into the project's templates/ folder."""
    plugins, loaded = _load(target, options)
    if loaded is None:
        raise UserError([Problem("no spec here to eject a template into",
                                 hint="run inside a project folder or pass its path")])
    index = _template_index(plugins, loaded.root)
    if name not in index:
        raise UserError([Problem(f"no template named '{name}'",
                                 hint=did_you_mean(name, index) or "see 'mpforge templates list'")])
    destination = loaded.root / "templates" / name
    layer, folder = index[name][0]
    if layer == "project":
        raise UserError([Problem(f"{destination} already overrides '{name}'")])
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / name, destination)
    return destination
