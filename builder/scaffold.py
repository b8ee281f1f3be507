"""`mpforge plugin new NAME`: a pip-installable plugin package from templates/scaffolds/plugin.

Files are copied with `__TOKEN__` replacement, not Jinja, because the scaffold's own
block template must keep its `[[ ]]` and `{{ }}` literally.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import __version__
from .errors import Problem, UserError
from .templates_path import core_templates_dir

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def scaffold_plugin(name: str, folder: Path) -> Path:
    if not NAME.match(name):
        raise UserError([Problem(f"invalid plugin name '{name}'",
                                 hint="lower-case words joined by '-', e.g. 'stamp-card'")])
    if folder.exists() and any(folder.iterdir()):
        raise UserError([Problem(f"{folder} already exists and is not empty", hint="choose another folder")])
    tokens = {
        "__NAME__": name,
        "__PACKAGE__": "mpforge_" + name.replace("-", "_"),
        "__BLOCK__": name,
        "__CLASS__": "".join(part.capitalize() for part in name.split("-")),
        "__MPFORGE_VERSION__": __version__,
    }
    source = core_templates_dir() / "scaffolds" / "plugin"
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(source).as_posix()
        text = path.read_text(encoding="utf-8")
        for token, value in tokens.items():
            rel = rel.replace(token, value)
            text = text.replace(token, value)
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return folder
