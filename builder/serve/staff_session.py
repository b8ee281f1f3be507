"""Who may use the merchant's web pages (the order board, the till's stamp code, the
customer view): the staff login and the signed session cookie.

Two roles, each with its own per-app token (at least 32 characters), neither the publish
token (which changes what every customer sees and belongs to whoever edits content):

* ``staff``, MPFORGE_STAFF_TOKEN_<appid>: typed on a shared counter tablet; the order
  board and the till.
* ``manager``, MPFORGE_MANAGER_TOKEN_<appid>: the shop's manager; everything staff may
  use, and the customer view (customers' data, segments pushed to Alipay).

Without a role's variable, logging in with that role is off. The login takes a token and
finds the role by which variable it matches.

The cookie (`v1.<payload>.<mac>`, base64url) names the app, the role and an expiry; its
mac is HMAC-SHA256 keyed with a hash of that role's token. Nothing is stored on the
server, so any number of processes accept it, and changing a role's token logs out that
role's devices. It is HttpOnly, SameSite=Strict, Path=/merchant/<appid>/ and Secure when
the request came over https.

Every state-changing request must also carry an Origin header naming this server (the
Host it was sent to): a page of another site cannot post here even where a browser
would send the cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import Request

from builder.serve.replies import ApiError

Role = Literal["staff", "manager"]
TOKEN_VARIABLES: dict[Role, str] = {"staff": "MPFORGE_STAFF_TOKEN_{appid}",
                                    "manager": "MPFORGE_MANAGER_TOKEN_{appid}"}
ROLE_NAMES: dict[Role, str] = {"staff": "员工", "manager": "店长"}
ROLES: tuple[Role, ...] = ("manager", "staff")  # the order a typed token is matched in
TOKEN_MIN_LENGTH = 32
COOKIE = "mpforge_staff"
SESSION_TTL = timedelta(hours=12)  # a shift; then log in again
VERSION = "v1"


def cookie_path(appid: str) -> str:
    return f"/merchant/{appid}/"


def role_token(appid: str, role: Role, environ: Mapping[str, str] = os.environ) -> str | None:
    """The role's token; None when its variable is not set (that role's login is off);
    ApiError 403 when it is too short to be safe."""
    variable = TOKEN_VARIABLES[role].format(appid=appid)
    token = environ.get(variable, "").strip()
    if not token:
        return None
    if len(token) < TOKEN_MIN_LENGTH:
        raise ApiError(403, "staff_login_disabled", f"{variable} has {len(token)} characters; it needs at least "
                                                    f"{TOKEN_MIN_LENGTH} (make one with: python -c 'import "
                                                    "secrets; print(secrets.token_urlsafe(32))') and a restart")
    return token


def login_off(appid: str, role: Role) -> ApiError:
    """The 403 of a page whose role has no token set on the server."""
    variable = TOKEN_VARIABLES[role].format(appid=appid)
    return ApiError(403, "staff_login_disabled", f"the {role} login is off: set {variable} (at least "
                                                 f"{TOKEN_MIN_LENGTH} characters) where the server runs, and "
                                                 "restart it")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(token: str, payload: str) -> str:
    key = hashlib.sha256(b"mpforge merchant pages cookie\0" + token.encode("utf-8")).digest()
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def issue(appid: str, role: Role, token: str, now: datetime) -> str:
    """A cookie value for `appid` and `role` (signed with that role's token), valid for
    SESSION_TTL from `now`."""
    body = json.dumps({"app": appid, "role": role, "exp": int((now + SESSION_TTL).timestamp())},
                      separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return f"{VERSION}.{payload}.{_mac(token, payload)}"


def session_role(value: str, appid: str, now: datetime, environ: Mapping[str, str] = os.environ) -> Role | None:
    """The role of a genuine, unexpired cookie value of `appid`; None for any other."""
    version, _, rest = value.partition(".")
    payload, _, mac = rest.partition(".")
    if version != VERSION or not (payload + mac).isascii():
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        app, role, expires = claims["app"], claims["role"], claims["exp"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        return None
    found = next((r for r in ROLES if r == role), None)
    if found is None or app != appid or not isinstance(expires, int) or now.timestamp() >= expires:
        return None
    token = role_token(appid, found, environ)
    if token is None or not hmac.compare_digest(_mac(token, payload), mac):
        return None
    return found


def require_role(request: Request, appid: str, role: Role, now: datetime) -> Role:
    """The session's role when it may use a page for `role` (a manager may use staff
    pages); ApiError 403 when that login is off or the session's role is too low, 401
    without a valid session."""
    allowed: tuple[Role, ...] = ("staff", "manager") if role == "staff" else ("manager",)
    if all(role_token(appid, r) is None for r in allowed):
        raise login_off(appid, role)
    found = session_role(request.cookies.get(COOKIE, ""), appid, now)
    if found is None:
        raise ApiError(401, "login_required", "log in first (the staff session is missing or has expired)")
    if found not in allowed:
        raise ApiError(403, "manager_only", "this page is for the shop's manager: log out, and log in with the "
                                            f"manager's token (MPFORGE_MANAGER_TOKEN_{appid})")
    return found


def require_same_origin(request: Request) -> None:
    """ApiError 403 unless the Origin header names the host the request was sent to (the
    page's own): a cross-site form or script is refused before anything changes."""
    origin = request.headers.get("origin", "")
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    if not host or parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
        raise ApiError(403, "cross_origin", "this request must come from the merchant's page itself (its Origin "
                                            "header must name this server)")


def set_cookie_header(request: Request, appid: str, value: str, max_age: int) -> str:
    """The Set-Cookie header of the staff session (max_age 0: logged out)."""
    secure = "; Secure" if request.url.scheme == "https" else ""
    return (f"{COOKIE}={value}; Path={cookie_path(appid)}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
            f"{secure}")
