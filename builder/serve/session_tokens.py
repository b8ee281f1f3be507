"""Session tokens: who a request is from, after `POST /session` checked an auth code
with Alipay.

A token is `v1.<payload>.<mac>` (base64url, unpadded): the payload is JSON naming the
app, the user (by user_id, or open_id when Alipay gave no user_id) and the expiry; the
mac is HMAC-SHA256 over the payload's text with the process's secret. Nothing is stored:
a token is valid when its mac checks, its app is the one asked and it has not expired.
So tokens outlive nothing but the secret: a restart with a new secret logs everyone out,
and processes behind one load balancer must share one secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta

from builder.serve.storage import AlipayUser

VERSION = "v1"
MIN_SECRET_BYTES = 32
USER_KINDS = ("user_id", "open_id")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionTokens:
    """Issues and checks session tokens with `secret`, valid for `ttl`."""

    def __init__(self, secret: bytes, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the session secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"SessionTokens(ttl={self.ttl})"

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for another signature this process makes (e.g. the till's
        stamp codes), derived from the secret: valid wherever the secret is, changed with
        it, and telling nothing of it or of the other purposes' keys."""
        return hmac.new(self._secret, f"mpforge derived key: {purpose}".encode(), hashlib.sha256).digest()

    def issue(self, appid: str, user: AlipayUser) -> str:
        expires = int((self._clock() + self.ttl).timestamp())
        body = json.dumps({"app": appid, "kind": user.kind, "sub": user.id, "exp": expires},
                          separators=(",", ":"), sort_keys=True)
        payload = _b64(body.encode("utf-8"))
        return f"{VERSION}.{payload}.{self._mac(payload)}"

    def user(self, appid: str, token: str) -> AlipayUser | None:
        """The user a token names, when it is genuine, for `appid` and unexpired; else None."""
        version, _, rest = token.partition(".")
        payload, _, mac = rest.partition(".")
        # compare_digest takes only ASCII text; the header may carry anything.
        if version != VERSION or not (payload + mac).isascii() or not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            # Signed by us, so well formed; still parsed defensively, as the check above
            # is all that stands between a forged string and this code.
            claims = json.loads(_unb64(payload))
            app, kind, sub, expires = claims["app"], claims["kind"], claims["sub"], claims["exp"]
        except (ValueError, binascii.Error, KeyError, TypeError):
            return None
        if app != appid or kind not in USER_KINDS or not isinstance(sub, str) or not isinstance(expires, int):
            return None
        if self._clock().timestamp() >= expires:
            return None
        return AlipayUser(kind, sub)
