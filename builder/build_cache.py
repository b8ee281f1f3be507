"""Skip a build whose inputs and outputs are exactly as the last build left them.

After a successful build, `.mpforge-cache.json` in the output folder records every input
the build read (the digest of the spec bytes that were built; the files of the assets
folder, the template folders and the plugins' code, by size and modification time: the
pipeline's `Input`s, the same list `mpforge dev` watches), a key for everything else that
shapes the output (mpforge's version, the installed plugins, the command-line plugin
options, the build date) and the size and modification time of every output file.
When all of that still matches, `mpforge build` is a no-op without loading, validating
or rendering anything; any difference, or any doubt (a missing or unreadable record),
means a full build, so a stale cache can only cost time, never correctness.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from . import __version__
from .clock import build_date
from .errors import Problem
from .options import PluginOptions
from .output_folder import CACHE, TEMP_PREFIX, read_state_file
from .spec_file import find_spec
from .write import WriteResult

DEFAULT_OUTPUT = "dist"


@dataclass(frozen=True)
class Input:
    """A file or folder a build reads. `tree`: a folder whose whole content counts.
    `local`: part of the project (spec, assets, template overrides, project plugins),
    which `mpforge dev` watches; the rest (mpforge and installed plugins) only the
    cache checks."""

    path: Path
    tree: bool
    local: bool


def _key(options: PluginOptions, today: str) -> str:
    installed = sorted(f"{ep.name}={ep.value}@{ep.dist.version if ep.dist else ''}"
                       for ep in entry_points(group="mpforge"))
    parts = [__version__, sys.version, repr(options), today, os.environ.get("SOURCE_DATE_EPOCH", ""), *installed]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _stat(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _tree_stats(folder: Path) -> dict[str, list[int] | None]:
    """Every file under `folder` (so an added or removed file shows too)."""
    if not folder.is_dir():
        return {}
    return {str(p): _stat(p) for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _spec_digest(spec_path: Path) -> str | None:
    try:
        return hashlib.sha256(spec_path.read_bytes()).hexdigest()
    except OSError:
        return None


def record(out_dir: Path, spec_path: Path, spec_sha256: str, inputs: Iterable[Input], outputs: Iterable[str],
           warnings: Iterable[Problem], options: PluginOptions, today: str) -> None:
    """Write the cache record for a build that just succeeded. `spec_sha256` is the
    digest of the bytes that were built: a spec saved while the build ran differs from
    it, so the next build is a full one."""
    spec = spec_path.resolve()
    # The spec counts by content (its digest above), not by modification time.
    folders = sorted({str(i.path) for i in inputs if i.path != spec})
    data = {
        "key": _key(options, today),
        "spec": str(spec),
        "spec_sha256": spec_sha256,
        "folders": folders,
        "inputs": _input_stats(folders),
        "outputs": {path: _stat(out_dir / path) for path in outputs},
        "warnings": [w.to_dict() for w in warnings],
    }
    # A fresh, unpredictable name, never opened through a link (one planted at a
    # predictable name would redirect the write); mode 0o666 less the umask, like every
    # output file. A temp file a crash leaves behind goes at the next build (commit.recover).
    temp = out_dir / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data))
        os.replace(temp, out_dir / CACHE)
    finally:
        temp.unlink(missing_ok=True)  # after a failure (disk full, Ctrl-C) leave nothing behind


def _input_stats(names: Iterable[str]) -> dict[str, list[int] | None]:
    stats: dict[str, list[int] | None] = {}
    for name in names:
        folder = Path(name)
        stats.update(_tree_stats(folder) if folder.is_dir() else {name: _stat(folder)})
    return stats


def skip_if_unchanged(target: str | Path | None, out_dir: str | Path | None,
                      options: PluginOptions) -> tuple[WriteResult, list[Problem]] | None:
    """(result, the last build's warnings) when the build can be skipped, else None."""
    spec_path = find_spec(target)
    out = Path(out_dir) if out_dir else spec_path.parent / DEFAULT_OUTPUT
    data = _unchanged(spec_path, out, options, build_date().isoformat())
    if data is None:
        return None
    return WriteResult(out, unchanged=sorted(data["outputs"])), [Problem(**w) for w in data["warnings"]]


def _unchanged(spec_path: Path, out_dir: Path, options: PluginOptions, today: str) -> dict[str, Any] | None:
    """The cache record when nothing changed since it was written, else None. Call it
    with the folder's lock held: the record and the outputs then belong together."""
    try:
        raw = read_state_file(out_dir / CACHE)  # a FIFO or link there is refused, not waited on
        if raw is None:
            return None
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    try:
        if (data["spec"] != str(spec_path.resolve()) or data["key"] != _key(options, today)
                or data["spec_sha256"] != _spec_digest(spec_path)):
            return None
        if _input_stats(data["folders"]) != data["inputs"]:
            return None
        if any(_stat(out_dir / path) != stat for path, stat in data["outputs"].items()):
            return None
    except (KeyError, TypeError, AttributeError):
        return None
    return data if isinstance(data, dict) else None
