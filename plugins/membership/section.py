"""An app's membership section, and the start the plugin's mini-program routes share.

`section_of` is the one lookup of an app's `membership:` section in its spec sections
(the tasks, the event listeners and the audience hook get those); `membership_of` is the
same for a route, 404 `no_membership` when the app has none. The parts one route serves
are looked up on top of them where they add a check of their own (the stamp card:
stamps_api.stamp_card_of; the messages: messages.messages_of).

`customer_request` is what every mini-program route of the plugin does first: the app
of the path, the part of its membership section the route serves (404 without it), and
the customer of the session token (401 without a valid one), in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request

from builder.serve.merchant import Merchant
from builder.serve.plugin_api import Api, ApiError, serve_api
from builder.serve.storage import AlipayUser

from .models import MembershipSection

Part = TypeVar("Part")


def section_of(sections: Mapping[str, Any]) -> MembershipSection | None:
    """An app's membership section, from its spec sections (None: the app has none)."""
    section = sections.get("membership")
    return section if isinstance(section, MembershipSection) else None


def membership_of(merchant: Merchant) -> MembershipSection:
    """The app's membership section; ApiError 404 when it has none."""
    section = section_of(merchant.sections)
    if section is None:
        raise ApiError(404, "no_membership", "this mini-program has no members (its spec has no membership "
                                             "section)")
    return section


def customer_request(request: Request, part: Callable[[Merchant], Part]) -> tuple[Api, Merchant, Part, AlipayUser]:
    """The route's Api, the app its path names, `part(app)` (e.g. `membership_of`: its
    ApiError when the app lacks it) and the session's customer (ApiError 401 without)."""
    api = serve_api(request)
    merchant = api.merchant(request)
    found = part(merchant)
    user = api.user(request, merchant.appid, required=True)
    assert user is not None  # required=True raises instead
    return api, merchant, found, user
