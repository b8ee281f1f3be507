"""The build's date, the one input every build has that no file holds."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timezone

from .errors import Problem, UserError

# Seconds since 1970 as `date +%s` prints them (reproducible-builds.org): ASCII digits,
# where int() would also take '１２'.
_EPOCH = re.compile(r"[0-9]+")
_EPOCH_HINT = "set it as `date +%s` prints it, or unset it to build as of today"


def build_date() -> date:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return date.today()
    if not _EPOCH.fullmatch(epoch):
        raise UserError([Problem(f"SOURCE_DATE_EPOCH is {epoch[:40]!r}, not a whole number of seconds since "
                                 "1970-01-01", hint=_EPOCH_HINT)])
    try:
        return datetime.fromtimestamp(int(epoch), timezone.utc).date()
    except (OverflowError, OSError, ValueError):  # past the year 9999, or past what the platform's clock takes
        raise UserError([Problem(f"SOURCE_DATE_EPOCH is {epoch[:40]!r}, past any date a build can have",
                                 hint=_EPOCH_HINT)]) from None
