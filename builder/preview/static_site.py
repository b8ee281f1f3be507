"""`mpforge preview`: the preview as static files a merchant opens without Python.

    DIR/index.html      the shell with every page's rendered preview embedded
    DIR/preview.js      the same script and styles `mpforge dev` serves
    DIR/preview.css
    DIR/app/...         the app files the pages show (images, tab icons)

A `.mpforge-preview` file lists what was written, so writing again replaces exactly
those files; a folder holding other files is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import Problem, UserError
from ..filetree import FileTree
from .model import STATIC_DIR, PreviewApp
from .shell import shell_html

MARKER = ".mpforge-preview"


def static_preview_files(tree: FileTree) -> dict[str, bytes]:
    """Every file of the static preview of `tree`, by relative path."""
    app = PreviewApp(tree, asset_prefix="app/")
    model = app.app_model()
    pages = app.all_page_models()
    data = {"app": model, "pages": pages}
    files = {
        "index.html": shell_html(name=model["name"], asset_base="", mode="static", data=data,
                                 csp_meta=True).encode("utf-8"),
        "preview.js": (STATIC_DIR / "preview.js").read_bytes(),
        "preview.css": (STATIC_DIR / "preview.css").read_bytes(),
    }
    for path in sorted(app.referenced):
        files[f"app/{path}"] = tree[path]
    return files


def write_static_preview(tree: FileTree, out_dir: Path) -> Path:
    """Write the static preview into `out_dir`; return the path of its index.html."""
    files = static_preview_files(tree)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / MARKER
    previous: list[str] = []
    if marker.is_file():
        try:
            previous = [p for p in json.loads(marker.read_text("utf-8"))["files"] if isinstance(p, str)]
        except (ValueError, KeyError, TypeError):
            previous = []
    elif any(out_dir.iterdir()):
        raise UserError([Problem(f"{out_dir} is not empty and holds no earlier preview",
                                 hint="give -o an empty or new folder")])
    for rel, content in files.items():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.mpforge-tmp")
        temp.write_bytes(content)
        os.replace(temp, target)
    for rel in previous:
        if rel not in files and ".." not in rel.split("/") and not rel.startswith("/"):
            (out_dir / rel).unlink(missing_ok=True)
    marker.write_text(json.dumps({"generator": "mpforge preview", "files": sorted(files)}, indent=2) + "\n",
                      encoding="utf-8")
    return out_dir / "index.html"
