"""The coupon audiences the membership plugin answers (mpforge_serve_in_audience):

* ``members``: the customer holds the member card (membership_customers.biz_card_no);
* ``segment:<id>``: the customer is in the spec's segment `<id>` now (segments.py);
  a segment the app's membership section does not have is no one's.

Any other audience is not the plugin's: None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builder.serve.storage import AlipayUser, Storage

from .points import is_member
from .section import section_of
from .segments import in_segment, segment_of

SEGMENT_PREFIX = "segment:"


def in_audience(storage: Storage, appid: str, user: AlipayUser, audience: str,
                sections: Mapping[str, Any]) -> bool | None:
    """Whether `user` is in `audience`; None when the audience is not the plugin's.
    `sections`: the app's spec sections (the segments' rules are the spec's)."""
    if audience == "members":
        return is_member(storage, appid, user)
    if not audience.startswith(SEGMENT_PREFIX):
        return None
    section = section_of(sections)
    if section is None:
        return False
    segment = segment_of(section, audience[len(SEGMENT_PREFIX):])
    return segment is not None and in_segment(storage, appid, user, segment, section)
