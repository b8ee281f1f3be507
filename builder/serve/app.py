"""The back end as an ASGI app: `create_app(merchants, database_url, ...)`.

One process serves many mini-programs, each under `/api/v1/{appid}/`. The core's routes:

* `POST /session`: an auth code (my.getAuthCode) -> Alipay's alipay.system.oauth.token
  -> a session token for that user (builder.serve.session_tokens).
* `GET /content`: the runtime content (builder.serve.content): the coupons' display
  data, whether each has stock left, with an ETag; the newest published version's
  words, or the spec's.
* `GET|POST /content/versions`, `POST /content/versions/{version}/restore`: list,
  publish and restore content versions (`mpforge publish`), with the app's publish
  token, read at start-up from MPFORGE_PUBLISH_TOKEN_<appid>; without it publishing is
  disabled.
* `GET|DELETE /me/data`: the session user's own data, shown or deleted, the core's and
  every plugin's (builder.serve.user_data; the privacy policy page calls them).

and the plugins' routes, from the `mpforge_serve_routes` hook (each an `Endpoint`: its
`Operation` and handler): the coupon plugin's `POST /coupons/{coupon_id}/claims` and
`GET /me/claims`, the promotion plugin's `POST /events`. The app loads the plugins as a
build with default options does (the installed ones, none disabled), once, unless given
its `Hooks`: a spec's own plugins and `--disable-plugin` do not change what is served.
A plugin's handler reaches what the routes share (the `Api`: merchants, Alipay clients,
storage, session tokens, limits, clock, job queue) with `serve_api(request)`, and the
helpers here (`reply`, `read_json`, `validated`, `ApiError`); its tables come with its
own Alembic revisions (`mpforge_serve_migrations`, run by `Storage.migrate`).
Web pages outside the API come from the `mpforge_serve_pages` hook (e.g. the ordering
plugin's order board under `/merchant/{appid}/`), served as the plugin gives them; none
may take a path under `/api/`. `GET /api/v1/openapi.json` describes every API route, the
core's and the plugins'. Every answer is JSON, errors as
`{"error": {"code", "message", ...}}`. No CORS headers are sent: the mini-program's
my.request is not a browser page and needs none, and no web page should call this API.
Secrets (keys, tokens, auth codes, the session secret) go into no response and no log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from anyio import to_thread
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from builder import __version__
from builder.errors import UserError
from builder.hooks import Hooks
from builder.pipeline import load_plugins
from builder.serve import claims
from builder.serve.alipay_client import AlipayClient
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.api_models import (
    ContentDocument,
    ContentReply,
    ContentVersionReply,
    ContentVersionsReply,
    ErrorDetail,
    ErrorReply,
    SessionReply,
    SessionRequest,
)
from builder.serve.business_events import BusinessEvent
from builder.serve.content import (
    PUBLISH_TOKEN_MIN_LENGTH,
    PUBLISH_TOKEN_VARIABLE,
    china_today,
    document_problems,
    render,
    spec_document,
)
from builder.serve.jobs import ClaimJobs, JobPolicy, TaskContext
from builder.serve.merchant import AlipayConfig, Merchant
from builder.serve.openapi import Endpoint, Handler, Operation, document
from builder.serve.rate_limit import TokenBuckets
from builder.serve.replies import ApiError, read_json, reply, validated
from builder.serve.session_tokens import SessionTokens
from builder.serve.staff_login import StaffLogin
from builder.serve.storage import AlipayUser, ContentVersion, Storage, utc_now
from builder.serve.user_data import FORGET, SHOW, UserData

LOG = logging.getLogger(__name__)

PREFIX = "/api/v1/{appid}"
ERROR = (ErrorReply,)
CLIENT_ERRORS = {400: ("malformed: not JSON, or a header missing or malformed", ERROR),
                 404: ("unknown app id", ERROR), 413: ("body too large", ERROR),
                 422: ("the body does not validate; error.fields says where", ERROR)}
UNAVAILABLE = {503: ("the database or Alipay is unavailable; nothing was stored, retry later", ERROR)}
SESSION = Operation(
    "createSession", "POST", f"{PREFIX}/session", "Log in: exchange an auth code for a session token",
    request=SessionRequest,
    responses={200: ("logged in", (SessionReply,)), **CLIENT_ERRORS,
               401: ("Alipay refused the auth code (error.alipaySubCode, e.g. isv.code-invalid)", ERROR),
               502: ("Alipay refused the server (its keys or app id), or its answer did not verify", ERROR),
               **UNAVAILABLE})
CONTENT = Operation(
    "getContent", "GET", f"{PREFIX}/content",
    "The mini-program's runtime content: its coupons' display data and whether stock is left",
    responses={200: ("the content: the newest published version's words and order (version >= 1; a coupon it "
                     "leaves out is not listed) or the spec's (version 0), the spec's rules, today's state and "
                     "soldOut. ETag is its hash: send it back as If-None-Match; "
                     "it changes with the version, the day and the stock", (ContentReply,)),
               304: ("unchanged since that ETag", ()), 404: ("unknown app id", ERROR), **UNAVAILABLE},
    response_headers={200: {"ETag": "hash of the content"}})
PUBLISH_ERRORS = {
    401: ("no valid publish token (Authorization: Bearer <the value of MPFORGE_PUBLISH_TOKEN_<appid> on the server>)",
          ERROR),
    403: ("publishing is disabled: the server has no MPFORGE_PUBLISH_TOKEN_<appid>", ERROR),
    404: ("unknown app id", ERROR), **UNAVAILABLE}
LIST_VERSIONS = Operation(
    "listContentVersions", "GET", f"{PREFIX}/content/versions", "The published content versions",
    security="publish", session="required",
    responses={200: ("every version, oldest first, and the one shown", (ContentVersionsReply,)), **PUBLISH_ERRORS})
PUBLISH = Operation(
    "publishContent", "POST", f"{PREFIX}/content/versions",
    "Publish a content document as the next version (what mpforge publish sends)",
    request=ContentDocument, security="publish", session="required",
    responses={201: ("stored as the newest version: GET content shows it now", (ContentVersionReply,)),
               400: ("malformed: not JSON", ERROR), 413: ("body too large", ERROR),
               422: ("the document does not validate, or names a coupon the served spec does not have (or one "
                     "twice); error.fields says where; nothing was stored", ERROR), **PUBLISH_ERRORS})
RESTORE = Operation(
    "restoreContent", "POST", f"{PREFIX}/content/versions/{{version}}/restore",
    "Show an earlier version again, stored as the next version (0: the spec's own content)",
    security="publish", session="required",
    responses={201: ("the new version, a copy of the one restored", (ContentVersionReply,)),
               **PUBLISH_ERRORS, 404: ("unknown app id or version", ERROR)})
OPENAPI = Operation("getOpenApi", "GET", "/api/v1/openapi.json", "This document",
                    responses={200: ("the OpenAPI 3.1 document", ())})


@dataclass(frozen=True)
class Limits:
    """session_ttl: how long a session token is valid; retry: calls to Alipay per claim
    request; events_burst and events_per_second: each caller's token bucket for /events;
    max_body_bytes: the largest request body read; max_content_bytes: the largest content
    document published."""

    session_ttl: timedelta = timedelta(hours=2)
    retry: claims.RetryPolicy = field(default_factory=claims.RetryPolicy)
    events_burst: float = 20
    events_per_second: float = 2
    max_body_bytes: int = 64 * 1024
    max_content_bytes: int = 1024 * 1024


def _version_reply(version: ContentVersion) -> ContentVersionReply:
    return ContentVersionReply(version=version.version, published_at=version.published_at,
                               restored_from=version.restored_from)


class Api:
    """The core's route handlers and what every route shares, the plugins' too: the
    merchants, their Alipay clients, the storage, the claims' job queue, the token
    signer, the limits, the clock, the events rate limiter, each app's publish token
    (none: publishing disabled), `products_gone`: the products of an app the plugins
    count as sold out (mpforge_serve_sold_out), `public_url`: the server's public
    base URL when the process knows it (`mpforge dev`; None: MPFORGE_PUBLIC_URL says),
    `plugins`: the back end's plugins (their serve hooks), and `context`: what a
    plugin's tasks and event listeners work with."""

    def __init__(self, merchants: Sequence[Merchant], clients: dict[str, AlipayClient], storage: Storage,
                 jobs: ClaimJobs, tokens: SessionTokens, limits: Limits, clock: Callable[[], datetime],
                 publish_tokens: Mapping[str, str], products_gone: Callable[[Merchant], set[str]],
                 public_url: str | None = None, *, plugins: Hooks, context: TaskContext) -> None:
        self.merchants = {m.appid: m for m in merchants}
        self.clients = clients
        self.storage = storage
        self.jobs = jobs
        self.tokens = tokens
        self.limits = limits
        self.clock = clock
        self.event_buckets = TokenBuckets(limits.events_burst, limits.events_per_second)
        self.publish_tokens = publish_tokens
        self.products_gone = products_gone
        self.public_url = public_url
        self.plugins = plugins
        self.context = context

    def announce(self, event: BusinessEvent) -> None:
        """Tell every plugin what happened to a customer (blocking: call it in a worker
        thread, after the change is committed; business_events.py)."""
        self.context.announce(event)

    def merchant(self, request: Request) -> Merchant:
        """The app the request's path names; an ApiError 404 when it is not served here."""
        merchant = self.merchants.get(request.path_params["appid"])
        if merchant is None:
            raise ApiError(404, "unknown_app", "no mini-program with this app id is served here")
        return merchant

    def user(self, request: Request, appid: str, *, required: bool) -> AlipayUser | None:
        """The user of the request's session token (None: no token, when not required);
        an ApiError 401 for a token that is not valid."""
        header = request.headers.get("authorization")
        if header is None and not required:
            return None
        scheme, _, token = (header or "").partition(" ")
        user = self.tokens.user(appid, token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "unauthorized", "a valid session token is required (Authorization: Bearer <token> "
                                                "from POST /session)", headers={"WWW-Authenticate": "Bearer"})
        return user

    async def session(self, request: Request) -> Response:
        merchant = self.merchant(request)
        body = validated(SessionRequest, await read_json(request, self.limits.max_body_bytes))
        client = self.clients[merchant.appid]
        try:
            token = await to_thread.run_sync(client.oauth_token, body.auth_code)
        except UnverifiedResponse:
            raise ApiError(502, "alipay_unverified", "Alipay's answer did not verify; check the server's Alipay "
                                                     "public key") from None
        except AlipayError as refused:
            # Only a bad code is the user's; any other refusal (signature, app id) is the server's set-up.
            if refused.sub_code == "isv.code-invalid":
                raise ApiError(401, "invalid_auth_code", "Alipay refused the auth code; get a new one",
                               alipay_sub_code=refused.sub_code) from None
            raise ApiError(502, "alipay_refused", "Alipay refused the server's request",
                           alipay_sub_code=refused.sub_code or refused.code) from None
        except AlipayUnavailable:
            raise ApiError(503, "alipay_unavailable", "Alipay did not answer; retry later",
                           headers={"Retry-After": "1"}) from None
        # Apps on Alipay's OpenID scheme get no user_id: the open_id is who the user is.
        user = AlipayUser("user_id", token.user_id) if token.user_id else AlipayUser("open_id", token.open_id or "")
        await to_thread.run_sync(self.storage.add_user, merchant.appid, user)
        return reply(200, SessionReply(token=self.tokens.issue(merchant.appid, user),
                                       expires_in=int(self.tokens.ttl.total_seconds())))

    def current_document(self, merchant: Merchant) -> tuple[int, ContentDocument]:
        """The content shown now: the newest published version, else the spec's (0)."""
        newest = self.storage.content_version(merchant.appid)
        if newest is None:
            return 0, spec_document(merchant)
        return newest.version, ContentDocument.model_validate_json(newest.body)

    async def content(self, request: Request) -> Response:
        merchant = self.merchant(request)
        version, document = await to_thread.run_sync(self.current_document, merchant)
        taken = await to_thread.run_sync(self.storage.taken, merchant.appid)
        gone = await to_thread.run_sync(self.products_gone, merchant)
        shown = render(merchant, document, version, china_today(self.clock()), taken, gone)
        text = json.dumps(shown.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        # The hash of everything the answer says: the version, the day's states, the stock.
        etag = '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "public, max-age=60"}
        sent = [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]
        if etag in sent or "*" in sent:
            return Response(status_code=304, headers=headers)
        return Response(text, media_type="application/json", headers=headers)

    # --- content versions: what `mpforge publish` calls ---------------------------------------

    def _publisher(self, request: Request) -> Merchant:
        """The app whose content the request may publish, with its publish token."""
        merchant = self.merchant(request)
        variable = PUBLISH_TOKEN_VARIABLE.format(appid=merchant.appid)
        expected = self.publish_tokens.get(merchant.appid)
        if expected is None:
            raise ApiError(403, "publishing_disabled", f"publishing is disabled for this app: set {variable} (at "
                                                       f"least {PUBLISH_TOKEN_MIN_LENGTH} characters) where the "
                                                       "server runs, and restart it")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # Compared in constant time, as bytes: a header may hold any Latin-1 character.
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("utf-8"),
                                                                 expected.encode("utf-8")):
            raise ApiError(401, "unauthorized", f"a valid publish token is required (Authorization: Bearer <the "
                                                f"value of {variable} on the server>)",
                           headers={"WWW-Authenticate": "Bearer"})
        return merchant

    async def list_versions(self, request: Request) -> Response:
        merchant = self._publisher(request)
        versions = await to_thread.run_sync(self.storage.content_versions, merchant.appid)
        return reply(200, ContentVersionsReply(current=versions[-1].version if versions else 0,
                                               versions=[_version_reply(v) for v in versions]))

    async def publish(self, request: Request) -> Response:
        merchant = self._publisher(request)
        content = validated(ContentDocument, await read_json(request, self.limits.max_content_bytes))
        problems = document_problems(merchant, content)
        if problems:
            raise ApiError(422, "invalid_body", "the content does not fit the spec this server serves",
                           fields=problems)
        version = await to_thread.run_sync(lambda: self.storage.add_content_version(
            merchant.appid, content.model_dump_json(by_alias=True)))
        LOG.info("app %s: content version %d published", merchant.appid, version.version)
        return reply(201, _version_reply(version))

    async def restore(self, request: Request) -> Response:
        merchant = self._publisher(request)
        raw = request.path_params["version"]
        number = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None
        if number == 0:
            body = spec_document(merchant).model_dump_json(by_alias=True)
        else:
            earlier = None if number is None else await to_thread.run_sync(
                self.storage.content_version, merchant.appid, number)
            if earlier is None:
                raise ApiError(404, "unknown_version", f"this app has no content version {raw!r}; GET "
                                                       "content/versions lists them (0 is the spec's own)")
            body = earlier.body
        version = await to_thread.run_sync(lambda: self.storage.add_content_version(
            merchant.appid, body, restored_from=number))
        LOG.info("app %s: content version %d restored as %d", merchant.appid, number, version.version)
        return reply(201, _version_reply(version))


def serve_api(request: Request) -> Api:
    """What the routes share, for a plugin's handler: the `Api` of the app serving `request`."""
    api = request.app.state.api
    if not isinstance(api, Api):
        raise TypeError("the request was not made to an app of builder.serve.app.create_app")
    return api


def _error(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return reply(exc.status, ErrorReply(error=exc.detail), exc.headers)
    if isinstance(exc, HTTPException):  # the router's 404 and 405
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return reply(exc.status_code, ErrorReply(error=ErrorDetail(code=code, message=str(exc.detail))),
                     dict(exc.headers or {}))
    # The database refused or could not be reached: the transaction rolled back whole.
    # Its class, never its message (the SQL and the driver's text), goes to the log.
    LOG.error("database unavailable: %s", type(getattr(exc, "orig", None) or exc).__name__)
    return reply(503, ErrorReply(error=ErrorDetail(code="database_unavailable",
                                                   message="the database is unavailable; nothing was stored, "
                                                           "retry later")), {"Retry-After": "1"})


def _publish_tokens(appids: Sequence[str]) -> dict[str, str]:
    """Each app's publish token that is set, from the environment."""
    tokens = {}
    for appid in appids:
        variable = PUBLISH_TOKEN_VARIABLE.format(appid=appid)
        token = os.environ.get(variable, "").strip()
        if token and len(token) < PUBLISH_TOKEN_MIN_LENGTH:
            raise UserError(f"{variable} has {len(token)} characters; a publish token needs at least "
                            f"{PUBLISH_TOKEN_MIN_LENGTH} (make one with: python -c 'import secrets; "
                            "print(secrets.token_urlsafe(32))')")
        if token:
            tokens[appid] = token
    return tokens


def create_app(merchants: Sequence[Merchant], database_url: str, *, alipay: AlipayConfig, secret: bytes,
               limits: Limits | None = None, clock: Callable[[], datetime] = utc_now, busy_timeout: float = 5.0,
               pool_size: int = 20, job_policy: JobPolicy | None = None, plugins: Hooks | None = None,
               public_url: str | None = None) -> Starlette:
    """The back end of `merchants`, storing in `database_url` (sqlite:///FILE or
    postgresql://...), whose schema is migrated to the newest revision first.

    alipay: the keys of every merchant's app and the gateway; secret: signs session
    tokens (at least 32 bytes; every process serving the same users needs the same one);
    clock: now, aware (tests move it); busy_timeout and pool_size: see `Storage`;
    job_policy: how the job queue settles pending claims (builder.serve.jobs). The
    queue's worker runs while the app's lifespan does. plugins: whose routes and
    migrations are served besides the core's (default: the plugins a build loads with
    default options). public_url: where the server is reached from outside, e.g. where
    Alipay posts payment notifications (default: MPFORGE_PUBLIC_URL, read when needed).
    Each app's publish token comes from MPFORGE_PUBLISH_TOKEN_<appid> (none: publishing
    its content is disabled).
    Raises UserError for a merchant served twice, a key that cannot be read, a publish
    token too short or a plugin route the core serves already.
    """
    appids = [m.appid for m in merchants]
    twice = sorted({a for a in appids if appids.count(a) > 1})
    if twice:
        raise UserError(f"app id {', '.join(twice)} is in more than one spec; each mini-program is served once")
    limits = limits or Limits()
    plugins = plugins or load_plugins()
    publish_tokens = _publish_tokens(appids)
    clients = {m.appid: alipay.client(m.appid) for m in merchants}
    # The forgotten users' pseudonyms are keyed by a key of their own, derived from the
    # secret every process shares (so they all count a forgotten user's claims alike).
    forget_key = hmac.new(secret, b"mpforge forgotten users v1", hashlib.sha256).digest()
    storage = Storage(database_url, busy_timeout=busy_timeout, pool_size=pool_size, clock=clock,
                      forget_key=forget_key)
    context: TaskContext

    def announce(event: BusinessEvent) -> None:
        plugins.serve_event(context, event)

    context = TaskContext(storage, clients, {m.appid: m.sections for m in merchants}, announce,
                          {m.appid: m.assets_dir for m in merchants})
    jobs = ClaimJobs(storage, clients, database_url, job_policy or JobPolicy(), context=context,
                     tasks=plugins.serve_tasks())
    try:
        storage.migrate([folder for _, folder in plugins.serve_migrations()])
        jobs.prepare()
        for merchant in merchants:
            storage.add_counters(merchant.appid, [c.id for c in merchant.coupons])
    except BaseException:
        storage.dispose()
        raise
    api = Api(merchants, clients, storage, jobs, SessionTokens(secret, limits.session_ttl, clock), limits, clock,
              publish_tokens, lambda merchant: plugins.serve_sold_out(storage, merchant.appid, merchant.products),
              public_url, plugins=plugins, context=context)
    user_data = UserData(serve_api)
    core: list[tuple[Operation, Handler]] = [
        (SESSION, api.session), (CONTENT, api.content), (LIST_VERSIONS, api.list_versions),
        (PUBLISH, api.publish), (RESTORE, api.restore), (SHOW, user_data.show), (FORGET, user_data.forget)]
    endpoints = [Endpoint(op, handler) for op, handler in core] + _plugin_endpoints(plugins, [op for op, _ in core])
    openapi = document([e.operation for e in endpoints] + [OPENAPI], title="mpforge serve", version=__version__)

    async def openapi_json(_request: Request) -> Response:
        return JSONResponse(openapi)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            async with jobs.running():
                yield
        finally:
            storage.dispose()

    routes: list[BaseRoute] = [Route(e.operation.path, e.handler, methods=[e.operation.method]) for e in endpoints]
    routes.append(Route(OPENAPI.path, openapi_json, methods=[OPENAPI.method]))
    routes += StaffLogin().routes()  # the one login of every plugin's merchant pages
    routes += _plugin_pages(plugins)
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={ApiError: _error, HTTPException: _error, DBAPIError: _error,
                                        PoolTimeout: _error})
    app.state.api = api
    return app


def _plugin_endpoints(plugins: Hooks, core: Sequence[Operation]) -> list[Endpoint]:
    """The plugins' endpoints; one that takes a core route's method and path or operation
    name is refused, naming the plugin."""
    found = []
    by_route = {(op.method, op.path): op for op in [*core, OPENAPI]}
    by_name = {op.name: op for op in [*core, OPENAPI]}
    for plugin, endpoint in plugins.serve_endpoints():
        op = endpoint.operation
        clash = by_route.get((op.method, op.path)) or by_name.get(op.name)
        if clash is not None:
            raise UserError(f"plugin '{plugin}' adds the route {op.name} ({op.method} {op.path}), which takes the "
                            f"core's {clash.name} ({clash.method} {clash.path}); give the plugin's route another "
                            "path and operation name")
        found.append(endpoint)
    return found


def _plugin_pages(plugins: Hooks) -> list[BaseRoute]:
    """The plugins' web pages; one under /api/ (the API's, documented in OpenAPI) is
    refused, naming the plugin."""
    found = []
    for plugin, route in plugins.serve_pages():
        path = str(getattr(route, "path", ""))
        if path == "/api" or path.startswith("/api/"):
            raise UserError(f"plugin '{plugin}' adds the web page {path}, under the API's /api/; serve a page "
                            "elsewhere (e.g. /merchant/{appid}/...), and add API routes with mpforge_serve_routes")
        found.append(route)
    return found
