"""Who may use the order board: the staff login and the signed session cookie.

The credential is a per-app staff token, MPFORGE_STAFF_TOKEN_<appid> (at least 32
characters), not the publish token: the publish token changes what every customer sees
(`mpforge publish`) and belongs to whoever edits content, while the board's token is
typed on a shared counter tablet; each can be handed out and rotated on its own. Without
the variable the board's login is off.

The cookie (`v1.<payload>.<mac>`, base64url) names the app and an expiry; its mac is
HMAC-SHA256 keyed with a hash of the staff token. Nothing is stored on the server, so
any number of processes accept it, and changing the staff token logs every device out.
It is HttpOnly, SameSite=Strict, Path=/merchant/<appid>/ and Secure when the request
came over https.

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
from urllib.parse import urlsplit

from starlette.requests import Request

from builder.serve.plugin_api import ApiError

STAFF_TOKEN_VARIABLE = "MPFORGE_STAFF_TOKEN_{appid}"
STAFF_TOKEN_MIN_LENGTH = 32
COOKIE = "mpforge_staff"
SESSION_TTL = timedelta(hours=12)  # a shift; then log in again
VERSION = "v1"


def cookie_path(appid: str) -> str:
    return f"/merchant/{appid}/"


def staff_token(appid: str, environ: Mapping[str, str] = os.environ) -> str:
    """The app's staff token; ApiError 403 when the board's login is off or the token is
    too short to be safe."""
    variable = STAFF_TOKEN_VARIABLE.format(appid=appid)
    token = environ.get(variable, "").strip()
    if not token:
        raise ApiError(403, "staff_login_disabled", f"the order board's login is off: set {variable} (at least "
                                                    f"{STAFF_TOKEN_MIN_LENGTH} characters) where the server runs, "
                                                    "and restart it")
    if len(token) < STAFF_TOKEN_MIN_LENGTH:
        raise ApiError(403, "staff_login_disabled", f"{variable} has {len(token)} characters; it needs at least "
                                                    f"{STAFF_TOKEN_MIN_LENGTH} (make one with: python -c 'import "
                                                    "secrets; print(secrets.token_urlsafe(32))') and a restart")
    return token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(token: str, payload: str) -> str:
    key = hashlib.sha256(b"mpforge order board cookie\0" + token.encode("utf-8")).digest()
    return _b64(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())


def issue(appid: str, token: str, now: datetime) -> str:
    """A cookie value for `appid`, valid for SESSION_TTL from `now`."""
    body = json.dumps({"app": appid, "exp": int((now + SESSION_TTL).timestamp())}, separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    return f"{VERSION}.{payload}.{_mac(token, payload)}"


def valid(value: str, appid: str, token: str, now: datetime) -> bool:
    """Whether a cookie value is genuine, for `appid` and unexpired."""
    version, _, rest = value.partition(".")
    payload, _, mac = rest.partition(".")
    if version != VERSION or not (payload + mac).isascii() or not hmac.compare_digest(_mac(token, payload), mac):
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        app, expires = claims["app"], claims["exp"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        return False
    return app == appid and isinstance(expires, int) and now.timestamp() < expires


def require_staff(request: Request, appid: str, now: datetime) -> None:
    """ApiError 401 unless the request carries a valid staff cookie of `appid` (403 when
    the login is off)."""
    token = staff_token(appid)
    if not valid(request.cookies.get(COOKIE, ""), appid, token, now):
        raise ApiError(401, "login_required", "log in on the order board first (the staff session is missing or "
                                              "has expired)")


def require_same_origin(request: Request) -> None:
    """ApiError 403 unless the Origin header names the host the request was sent to (the
    page's own): a cross-site form or script is refused before anything changes."""
    origin = request.headers.get("origin", "")
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    if not host or parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
        raise ApiError(403, "cross_origin", "this request must come from the order board's own page (its Origin "
                                            "header must name this server)")


def set_cookie_header(request: Request, appid: str, value: str, max_age: int) -> str:
    """The Set-Cookie header of the staff session (max_age 0: logged out)."""
    secure = "; Secure" if request.url.scheme == "https" else ""
    return (f"{COOKIE}={value}; Path={cookie_path(appid)}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
            f"{secure}")
