"""The coupon audiences the membership plugin answers (mpforge_serve_in_audience).

MINIMAL (helper mcard's): "members" only, by points.is_member; the segments' answer is
helper mview's, whose audience.py replaces this one.
"""

from __future__ import annotations

from builder.serve.storage import AlipayUser, Storage

from .points import is_member


def in_audience(storage: Storage, appid: str, user: AlipayUser, audience: str) -> bool | None:
    if audience == "members":
        return is_member(storage, appid, user)
    return None
