"""`mpforge publish`: a spec's runtime content sent to a running `mpforge serve` as its
next content version; or an earlier version restored; or the versions listed.

The document sent is `content.spec_document` of the spec, the very content the server
shows as version 0 for the spec it serves, so publishing changes the mini-program's
words without a new build or review: the server then shows the newest version
(`GET /api/v1/{appid}/content`). The server must serve the same app id, and every
coupon published must be one it serves (it refuses others, located).

The publish token is the value of MPFORGE_PUBLISH_TOKEN_<appid>, the same variable where
the server runs and where this runs; it goes in an Authorization header, so only https
URLs are taken, and http only to this machine (127.0.0.1, localhost, [::1]) for a local
`mpforge serve`. Redirects are not followed: the token would go along.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ValidationError

from builder.errors import Problem, UserError
from builder.serve.api_models import ContentVersionReply, ContentVersionsReply, ErrorReply
from builder.serve.content import PUBLISH_TOKEN_VARIABLE, spec_document
from builder.serve.merchant import load_merchant

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TIMEOUT_SECONDS = 30.0


def versions_url(base_url: str, appid: str) -> str:
    """The content versions URL of `appid` on the server at `base_url` (its root, or the
    path a proxy serves it under); UserError for a URL the token may not be sent to."""
    expected = ("expected the server's base URL, https://HOST[:PORT][/PATH] (or http://127.0.0.1:PORT or "
                "http://localhost:PORT for a local mpforge serve)")
    try:
        parts = urlsplit(base_url)
        host, _port = parts.hostname, parts.port  # reading the port checks it
    except ValueError as exc:
        raise UserError(f"--to {base_url!r} is not a URL ({exc}); {expected}") from None
    if not host:
        raise UserError(f"--to {base_url!r} has no host; {expected}")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise UserError(f"--to {base_url!r}: http would send the publish token unencrypted; use https "
                        "(http only reaches this machine: 127.0.0.1 or localhost)")
    if parts.scheme not in ("http", "https"):
        raise UserError(f"--to {base_url!r}: {parts.scheme or 'no'} scheme; {expected}")
    if parts.query or parts.fragment or parts.username is not None or parts.password is not None:
        raise UserError(f"--to {base_url!r}: no query, fragment or user name please; {expected}")
    path = parts.path.rstrip("/") + f"/api/v1/{appid}/content/versions"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def publish_token(appid: str) -> str:
    """The app's publish token, from the environment; UserError naming the variable."""
    variable = PUBLISH_TOKEN_VARIABLE.format(appid=appid)
    token = os.environ.get(variable, "").strip()
    if not token:
        raise UserError(f"{variable} is not set: publishing needs the app's publish token, the same value as "
                        "where mpforge serve runs")
    return token


def _refusal(url: str, response: httpx.Response) -> UserError:
    """What the server's refusal says, located where it says (error.fields)."""
    status = response.status_code
    if 300 <= status < 400:
        return UserError(f"{url}: the server redirects ({status}) to {response.headers.get('location', '?')}; "
                         "give --to the final address (redirects are not followed: the token would go along)")
    try:
        error = ErrorReply.model_validate(response.json()).error
    except (ValueError, ValidationError):
        return UserError(f"{url}: the server answered {status} {response.reason_phrase}, not as mpforge serve "
                         "does; is --to the base URL of an mpforge serve?")
    hint = {"not_found": "is --to the server's base URL, without /api/v1/...?",
            "unknown_app": "the server does not serve this spec's app id: start mpforge serve with this spec",
            "unknown_version": "mpforge publish SPEC --to URL --list shows the versions"}.get(error.code)
    if error.fields:
        return UserError([Problem(f"{field.message} (the server refused the content: {status} {error.code})",
                                  path=f"content.{field.location}") for field in error.fields])
    return UserError([Problem(f"{url}: the server refused ({status} {error.code}): {error.message}", hint=hint)])


def _send(method: str, url: str, token: str, reply: type[BaseModel], body: Any = None) -> Any:
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = client.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise UserError(f"{url}: could not reach the server ({type(exc).__name__}: {exc}); is mpforge serve "
                        "running there?") from None
    if not response.is_success:
        raise _refusal(url, response)
    try:
        return reply.model_validate(response.json())
    except (ValueError, ValidationError):
        raise UserError(f"{url}: the server's answer is not what mpforge serve sends; is --to the base URL of "
                        "an mpforge serve of this version?") from None


def run_publish(spec: str | Path, base_url: str, *, restore: int | None = None,
                list_versions: bool = False) -> str:
    """Publish the spec's content to the server at `base_url` (or restore version
    `restore`, or list the versions); what to print. UserError for anything refused."""
    if restore is not None and list_versions:
        raise UserError("give --restore N or --list, not both")
    merchant = load_merchant(spec)
    url = versions_url(base_url, merchant.appid)
    token = publish_token(merchant.appid)
    if list_versions:
        listed: ContentVersionsReply = _send("GET", url, token, ContentVersionsReply)
        if not listed.versions:
            return f"app {merchant.appid}: no content version published; the server shows the spec's own (0)"
        lines = [f"app {merchant.appid}: content versions ({url})"]
        for v in listed.versions:
            restored = f", restored from {v.restored_from}" if v.restored_from is not None else ""
            current = "  <- shown" if v.version == listed.current else ""
            lines.append(f"  {v.version:>4}  {v.published_at.isoformat()}{restored}{current}")
        return "\n".join(lines)
    if restore is not None:
        restored_as: ContentVersionReply = _send("POST", f"{url}/{restore}/restore", token, ContentVersionReply)
        return f"app {merchant.appid}: version {restore} restored as version {restored_as.version}, shown now"
    document = spec_document(merchant).model_dump(mode="json", by_alias=True)
    published: ContentVersionReply = _send("POST", url, token, ContentVersionReply, document)
    return f"app {merchant.appid}: content version {published.version} published, shown now"
