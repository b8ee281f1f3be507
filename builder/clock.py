"""The build's date, the one input every build has that no file holds."""

from __future__ import annotations

import os
from datetime import date, datetime, timezone


def build_date() -> date:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else today."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return datetime.fromtimestamp(int(epoch), timezone.utc).date() if epoch else date.today()
