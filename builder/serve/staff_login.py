"""The one login of the merchant's web pages, served by the core so that every plugin's
page (the ordering plugin's order board, the membership plugin's till and customer view)
shares one session under ``/merchant/{appid}/`` (staff_session.py says who may log in):

* `POST /merchant/{appid}/login`, body `{"token": "<staff or manager token>"}`: 204 and
  the session cookie of the role whose token it is; 401 `wrong_staff_token`; 403
  `staff_login_disabled` (neither token set on the server) or `cross_origin`; 429
  `too_many_logins` with Retry-After (5 attempts per address, then one per 12 s, per
  process).
* `POST /merchant/{appid}/logout`: 204, the cookie cleared.
* `GET /merchant/{appid}/auth/login.js`, `login.css`: the login form's files.

A plugin's page answers `merchant_page(...)`: the page itself, or without a session of
its role the login form (`login_page`), whose script posts to ``login`` relative to the
page and reloads it.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from string import Template
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from builder.serve.merchant import Merchant
from builder.serve.rate_limit import TokenBuckets
from builder.serve.replies import ApiError, read_json
from builder.serve.staff_session import (
    ROLE_NAMES,
    ROLES,
    SESSION_TTL,
    TOKEN_MIN_LENGTH,
    TOKEN_VARIABLES,
    Role,
    issue,
    require_role,
    require_same_origin,
    role_token,
    set_cookie_header,
)

LOG = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "staff_static"
FILES = {"login.js": "text/javascript; charset=utf-8", "login.css": "text/css; charset=utf-8"}
NO_STORE = {"Cache-Control": "no-store"}
# A merchant page loads its own scripts and styles only, talks to its own server only, and
# is framed by no one.
PAGE_HEADERS = {**NO_STORE, "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                                                       "connect-src 'self'; img-src 'self' data:; "
                                                       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
LOGIN_BODY_BYTES = 4096
FORM = Template((STATIC / "login.html").read_text("utf-8"))


def login_page(merchant: Merchant, what: str, role: Role, refused: ApiError) -> Response:
    """The login form in place of a merchant page (`what`, e.g. 订单看板) for `role`, as
    `require_role` refused it: no session (401: the form, 200), or (403) a session of a
    lower role or the login off, said at once in words."""
    variable = TOKEN_VARIABLES[role].format(appid=merchant.appid)
    error = {"manager_only": f"此页面仅限店长：请用店长口令（{variable}）重新登录。",
             "staff_login_disabled": f"{what}尚未开启：请在服务器上设置 {variable}（至少 {TOKEN_MIN_LENGTH} 个字符）后"
                                     "重启服务。"}.get(refused.detail.code, "")
    html = FORM.substitute(name=escape(merchant.name), what=escape(what), role_name=ROLE_NAMES[role],
                           variable=escape(variable), error=escape(error), error_hidden="" if error else " hidden")
    status = 403 if refused.status == 403 else 200
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def merchant_page(request: Request, merchant: Merchant, what: str, role: Role, now: datetime, page: Template,
                  **values: str) -> Response:
    """A merchant page (`what`, e.g. 订单看板) for `role`: `page` filled with `values`
    (HTML-escaped), or in its place the login form as `require_role` refused it."""
    try:
        require_role(request, merchant.appid, role, now)
    except ApiError as refused:  # no session, a lower role's, or the login off: the form says which
        return login_page(merchant, what, role, refused)
    html = page.substitute({name: escape(value) for name, value in values.items()})
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


class _Shared(Protocol):
    """What the login uses of the app's builder.serve.app.Api (which imports this module,
    so it is named by its shape here)."""

    clock: Callable[[], datetime]

    def merchant(self, request: Request) -> Merchant: ...


def _shared(request: Request) -> _Shared:
    api: _Shared = request.app.state.api
    return api


class StaffLogin:
    """The login's routes and what they keep while the app runs: the attempts' token
    buckets (per process, as builder.serve.rate_limit says) and the form's files."""

    def __init__(self, *, burst: float = 5, per_second: float = 1 / 12) -> None:
        self.attempts = TokenBuckets(burst, per_second)
        self.files = {name: (STATIC / name).read_bytes() for name in FILES}

    def routes(self) -> list[BaseRoute]:
        return [Route("/merchant/{appid}/login", self.login, methods=["POST"]),
                Route("/merchant/{appid}/logout", self.logout, methods=["POST"]),
                Route("/merchant/{appid}/auth/{name}", self.static, methods=["GET"])]

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES:
            raise ApiError(404, "not_found", "the login has no such file")
        return Response(self.files[name], media_type=FILES[name], headers={"Cache-Control": "no-cache"})

    async def login(self, request: Request) -> Response:
        api = _shared(request)
        merchant = api.merchant(request)
        require_same_origin(request)
        tokens = {role: role_token(merchant.appid, role) for role in ROLES}
        if all(token is None for token in tokens.values()):
            raise ApiError(403, "staff_login_disabled", "the merchant pages' login is off: set "
                                                        f"MPFORGE_STAFF_TOKEN_{merchant.appid} (and, for the "
                                                        f"manager, MPFORGE_MANAGER_TOKEN_{merchant.appid}), at "
                                                        "least 32 characters each, where the server runs, and "
                                                        "restart it")
        address = request.client.host if request.client else "-"
        wait = self.attempts.take(f"{merchant.appid} {address}")
        if wait:
            seconds = math.ceil(wait)
            raise ApiError(429, "too_many_logins", f"too many login attempts; try again in {seconds} s",
                           headers={"Retry-After": str(seconds)})
        body = await read_json(request, LOGIN_BODY_BYTES)
        given = body.get("token") if isinstance(body, dict) else None
        role = _matching_role(given, tokens)
        if role is None:
            LOG.warning("app %s: a wrong token at the merchant pages' login from %s", merchant.appid, address)
            raise ApiError(401, "wrong_staff_token", "this is not the shop's staff or manager token; ask the "
                                                     "manager for it (the value of MPFORGE_STAFF_TOKEN_"
                                                     f"{merchant.appid} on the server)")
        token = tokens[role]
        assert token is not None  # _matching_role matched it
        value = issue(merchant.appid, role, token, api.clock())
        max_age = int(SESSION_TTL.total_seconds())
        return Response(status_code=204, headers={
            **NO_STORE, "Set-Cookie": set_cookie_header(request, merchant.appid, value, max_age)})

    async def logout(self, request: Request) -> Response:
        merchant = _shared(request).merchant(request)
        require_same_origin(request)
        return Response(status_code=204, headers={
            **NO_STORE, "Set-Cookie": set_cookie_header(request, merchant.appid, "", 0)})


def _matching_role(given: object, tokens: dict[Role, str | None]) -> Role | None:
    """The role whose token `given` is (the manager's first, when both are the same)."""
    if not isinstance(given, str):
        return None
    typed = given.strip().encode("utf-8")
    for role in ROLES:
        token = tokens[role]
        if token is not None and hmac.compare_digest(typed, token.encode("utf-8")):
            return role
    return None
