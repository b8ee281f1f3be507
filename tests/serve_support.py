"""What the back end's tests (test_serve.py, test_serve_content.py) and
bench/claims_load.py share: specs with coupons, httpx driving the ASGI app from
synchronous code, the app on a live uvicorn, and the types of the fixtures, which are in
serve_fixtures.py.
"""

from __future__ import annotations

import copy
import functools
import os
import socket
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from anyio.from_thread import start_blocking_portal
from helpers import MINIMAL_SPEC, write_project
from pg_cluster import PostgresCluster
from sqlalchemy import select
from starlette.applications import Starlette

from builder.serve.app import Limits
from builder.serve.claims import RetryPolicy
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.sandbox_state import Issued
from builder.serve.storage import COUNTERS, Storage

APPID = "2021000000000001"
OTHER_APPID = "2021000000000002"


def coupon(coupon_id: str, **changes: Any) -> dict[str, Any]:
    """A cash coupon of the spec's coupon section, claimable any day."""
    return {"id": coupon_id, "kind": "cash", "title": f"{coupon_id} 5 元", "value": 5,
            "validity": {"days_after_claim": 7}, "stock": 5, "per_user_limit": 1,
            "activity_id": f"act-{coupon_id}", **changes}


def write_spec(root: Path, coupons: Sequence[dict[str, Any]], appid: str = APPID) -> Path:
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["app"]["appid"] = appid
    if coupons:
        spec["backend"] = {"base_url": "https://api.example.com"}
        spec["coupon"] = {"coupons": list(coupons)}
    return write_project(root, spec)


class ApiClient:
    """httpx (AsyncClient over ASGITransport) against the app, called from synchronous
    code: an event loop in a thread (anyio's blocking portal) runs client and app, so
    the app's worker threads, the database and the sandbox are all real.
    `gather` sends requests at once."""

    def __init__(self, app: Starlette) -> None:
        self._portal_context = start_blocking_portal()
        self._portal = self._portal_context.__enter__()
        self.app = app
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test",
                                        timeout=120)

    def lifespan(self) -> AbstractContextManager[Any]:
        """The app's lifespan (its job worker) running on this client's event loop, as
        uvicorn runs it: `with api.lifespan(): ...`. Without it the app serves requests
        but runs no background work."""
        return self._portal.wrap_async_context_manager(self.app.router.lifespan_context(self.app))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(functools.partial(self.client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def gather(self, requests: Sequence[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
        """(method, url, keyword arguments) each, all in flight together; the responses in order."""
        responses: list[httpx.Response | None] = [None] * len(requests)

        async def one(i: int) -> None:
            method, url, kwargs = requests[i]
            responses[i] = await self.client.request(method, url, **kwargs)

        async def every() -> None:
            async with anyio.create_task_group() as group:
                for i in range(len(requests)):
                    group.start_soon(one, i)

        self._portal.call(every)
        return [r for r in responses if r is not None]

    def close(self) -> None:
        try:
            self._portal.call(self.client.aclose)
        finally:
            self._portal_context.__exit__(None, None, None)


class LiveServer:
    """`with LiveServer(app) as server:` the app served by uvicorn in a thread on
    127.0.0.1 and a free port; `server.url` is its base URL."""

    def __init__(self, app: Starlette) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        # The app's storage is the test's to dispose: no lifespan.
        self._server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


PUBLISH_TOKEN = "publish-token-for-the-tests-0123456789"  # at least 32 characters
SECRET = b"s" * 16 + b"e" * 16 + b"cret-for-the-tests"
# Noon in China on 2026-03-02: the date coupons are checked against.
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)
FAST_RETRY = Limits(retry=RetryPolicy(attempts=3, delays=(0.05,)))


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the back end's tests (.ci/run installs postgresql and runs as root)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Database:
    kind: str
    url: str
    cluster: PostgresCluster | None  # PostgreSQL's, to take the database down


class Clock:
    """The app's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = NOON

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Served:
    app: Starlette
    api: ApiClient
    sandbox: LocalSandbox
    clock: Clock
    database: Database

    @property
    def storage(self) -> Storage:
        storage: Storage = self.app.state.api.storage
        return storage

    def login(self, name: str = "7", appid: str = APPID) -> str:
        response = self.api.post(f"/api/v1/{appid}/session", json={"authCode": f"sandbox-user-{name}"})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def claim(self, token: str | None, coupon_id: str = "welcome", key: str | None = "key-1", *,
              body: Any = None, appid: str = APPID) -> httpx.Response:
        return self.api.post(f"/api/v1/{appid}/coupons/{coupon_id}/claims", **claim_request(token, key, body))

    def rows(self, table: Any) -> list[dict[str, Any]]:
        with self.storage.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(table).order_by(*table.primary_key))]

    def taken(self, coupon_id: str = "welcome") -> int:
        return next((r["taken"] for r in self.rows(COUNTERS) if r["coupon_id"] == coupon_id), 0)

    def vouchers(self, coupon_id: str = "welcome") -> list[Issued]:
        return self.sandbox.state.issued(f"act-{coupon_id}")


def claim_request(token: str | None, key: str | None, body: Any = None) -> dict[str, Any]:
    headers: dict[str, str | bytes] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}".encode("latin-1")  # HTTP's header charset, for forged ones
    if key is not None:
        headers["Idempotency-Key"] = key
    request: dict[str, Any] = {"headers": headers}
    if isinstance(body, (bytes, str)):
        request["content"] = body
    elif body is not None:
        request["json"] = body
    return request
