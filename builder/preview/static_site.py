"""`mpforge preview`: the preview as static files a merchant opens without Python.

    DIR/index.html      the shell with every page's rendered preview embedded
    DIR/preview.js      the same script and styles `mpforge dev` serves
    DIR/preview.css
    DIR/app/...         the app files the pages show (images, tab icons)

A `.mpforge-preview` file lists what was written, so writing again replaces exactly
those files; a folder holding other files is refused, and links inside the folder are
never followed.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path, PurePosixPath

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


def write_static_preview(tree: FileTree, out_dir: Path, assets_dir: Path | None = None) -> Path:
    """Write the static preview into `out_dir`; return the path of its index.html.

    `assets_dir`, the project's assets folder, may not hold the preview: the next build
    would copy it into the mini-program. Links inside `out_dir` are never followed (the
    folder may come from an archive or a repository): a folder to write into that is a
    link is refused before anything is written, a file that is a link is replaced, and
    only regular files listed in the marker are removed.
    """
    _check_location(out_dir, assets_dir)
    files = static_preview_files(tree)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        previous = _previous_files(out_dir)
        for folder in sorted({PurePosixPath(rel).parent for rel in files}):
            _check_real_folder(out_dir, folder.parts)
        for rel, content in files.items():
            _replace(out_dir / rel, content)
        for rel in sorted(previous - set(files)):
            _remove_file(out_dir, rel)
        listing = json.dumps({"generator": "mpforge preview", "files": sorted(files)}, indent=2) + "\n"
        _replace(out_dir / MARKER, listing.encode("utf-8"))
    except OSError as exc:
        raise UserError([Problem(f"cannot write the preview: {exc.filename or out_dir}: {exc.strerror}",
                                 hint="check the folder's permissions and free space")]) from exc
    return out_dir / "index.html"


def _check_location(out_dir: Path, assets_dir: Path | None) -> None:
    out = out_dir.resolve()
    if out.parent == out:
        raise UserError([Problem(f"{out_dir} is the root of the file system",
                                 hint="give -o an empty or new folder")])
    if assets_dir is not None and out.is_relative_to(assets_dir.resolve()):
        raise UserError([Problem(f"the preview folder {out_dir} is inside the assets folder {assets_dir}: the next "
                                 "build would copy the preview into the mini-program",
                                 hint="choose a folder outside the assets folder with -o")])


def _previous_files(out_dir: Path) -> set[str]:
    """What the last preview wrote, by its marker. A folder without a marker must be
    empty; a marker that is a link is no marker."""
    marker = out_dir / MARKER
    if marker.is_symlink() or not marker.is_file():
        if any(out_dir.iterdir()):
            raise UserError([Problem(f"{out_dir} is not empty and holds no earlier preview",
                                     hint="give -o an empty or new folder")])
        return set()
    try:
        listed = json.loads(marker.read_text("utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        return set()
    return {p for p in listed if isinstance(p, str)} if isinstance(listed, list) else set()


def _check_real_folder(out_dir: Path, parts: tuple[str, ...]) -> None:
    """Refuse a link or a file where the preview needs a folder (it is created later)."""
    folder = out_dir
    for part in parts:
        folder = folder / part
        if folder.is_symlink():
            raise UserError([Problem(f"{folder} is a symbolic link; mpforge preview does not write through links",
                                     hint="remove the link, or give -o an empty or new folder")])
        if folder.exists() and not folder.is_dir():
            raise UserError([Problem(f"{folder} is not a folder, and the preview needs one there",
                                     hint="remove it, or give -o an empty or new folder")])


def _replace(target: Path, content: bytes) -> None:
    """Write `target` through a fresh temporary file renamed over it: the rename replaces
    a link at `target` rather than writing into whatever it points to."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.mpforge-tmp")
    temp.unlink(missing_ok=True)  # left by an interrupted run; unlink removes a link, not its target
    # O_EXCL: never opens an existing file, so never one a link points to.
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:
        handle.write(content)
    os.replace(temp, target)


def _remove_file(out_dir: Path, rel: str) -> None:
    """Remove `rel` if it is a regular file inside `out_dir` reached through real
    folders only; anything else (a link, a folder, a path out of `out_dir`) stays."""
    parts = rel.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts):
        return
    folder = out_dir
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            return
    target = folder / parts[-1]
    try:
        is_file = stat.S_ISREG(target.lstat().st_mode)
    except FileNotFoundError:
        return
    if is_file:
        target.unlink()
