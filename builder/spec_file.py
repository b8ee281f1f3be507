"""Finding the spec file a command is pointed at.

Kept apart from the load stage so that a no-op `mpforge build` can decide to skip
without importing the YAML, pydantic or Jinja machinery.
"""

from __future__ import annotations

from pathlib import Path

from .errors import Problem, SpecError

SPEC_FILENAMES = ("mpforge.yaml", "mpforge.yml", "mpforge.json")


def find_spec(target: str | Path | None) -> Path:
    """Resolve a SPEC|DIR command-line argument to a spec file."""
    path = Path(target) if target else Path.cwd()
    if path.is_dir():
        for name in SPEC_FILENAMES:
            if (path / name).is_file():
                return path / name
        raise SpecError([Problem(
            f"no spec found in {path}",
            hint=f"expected one of {', '.join(SPEC_FILENAMES)}; create one with 'mpforge new'",
        )])
    if not path.is_file():
        raise SpecError([Problem(f"spec file not found: {path}")])
    return path
