"""The in-memory output: relative POSIX path -> bytes. Render fills it; check, write and
the preview read it, so nothing is rendered twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any


def json_text(data: Any) -> str:
    """How every JSON output file is written."""
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


class FileTree:
    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    def add(self, path: str, content: str | bytes) -> None:
        if path in self._files:
            raise ValueError(f"two outputs claim the same file: {path}")
        self._files[path] = content.encode("utf-8") if isinstance(content, str) else content

    def add_json(self, path: str, data: Any) -> None:
        """JSON outputs always come from data, never from text templates."""
        self.add(path, json_text(data))

    def __contains__(self, path: object) -> bool:
        return path in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._files))

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, path: str) -> bytes:
        return self._files[path]

    def text(self, path: str) -> str:
        return self._files[path].decode("utf-8")

    def items(self) -> Iterator[tuple[str, bytes]]:
        for path in self:
            yield path, self._files[path]

    def digest(self, path: str) -> str:
        return hashlib.sha256(self._files[path]).hexdigest()
