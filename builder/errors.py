"""Problems found in a spec or its output, and the exceptions that carry them.

A `Problem` is one located message for a person; `SpecError` carries all problems found
in one pass so the user fixes everything at once. Anything that is not a `UserError`
escaping the pipeline is a bug in mpforge or a plugin (exit 2).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 2


@dataclass(frozen=True)
class Problem:
    """One located message: `file:line:col: spec.path: message (hint)`."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    severity: Literal["error", "warning"] = "error"
    # The platform rule a problem comes from, e.g. "review/first-tab" for what Alipay's
    # review would reject; shown after the message and carried in JSON reports.
    rule: str | None = None

    def location(self) -> str:
        parts = [p for p in (self.file, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f" ({self.hint})"
        if self.rule:
            text += f" [{self.rule}]"
        prefix = [p for p in (self.location(), self.path) if p]
        return ": ".join([*prefix, text])

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "rule": self.rule,
        }


def line_and_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset in `text`."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


class UserError(Exception):
    """A mistake the user can fix; printed without a traceback, exit code 1."""

    def __init__(self, problems: Iterable[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SpecError(UserError):
    """The spec (or something it references) is invalid."""


class OutputError(UserError):
    """The rendered output broke a check rule; nothing was written."""


class WriteRefused(UserError):
    """Writing to the output folder was refused before anything in it changed (files in
    the way, an unsafe folder, another build holding it)."""


class PluginError(Exception):
    """A plugin raised something other than a UserError, or returned something its hook
    does not allow: a bug in that plugin (exit 2). The message names the plugin, its
    file and the hook."""

    def __init__(self, plugin: str, hook: str, exc: BaseException, where: str = "", file: str | None = None):
        self.plugin, self.hook, self.original, self.file = plugin, hook, exc, file
        prefix = f"{where}: " if where else ""
        source = f" ({file})" if file else ""
        super().__init__(f"{prefix}plugin '{plugin}'{source} failed in {hook}: {type(exc).__name__}: {exc}")


class PluginLoadError(UserError):
    """A plugin cannot be loaded: it fails to import, or its hooks do not match the hook
    specifications. Located at the plugin's file; exit 1, since the way out (fix,
    upgrade or disable the plugin) is the user's."""


@dataclass
class ProblemList:
    """Collects problems during one stage; `raise_if_errors` ends the stage."""

    items: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        self.items.append(problem)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def raise_if_errors(self, exc_type: type[UserError] = SpecError) -> None:
        if self.errors:
            raise exc_type(self.errors)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choice, or None when nothing is close."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None
