"""What the back end's tests (test_serve.py) and bench/claims_load.py share: specs with
coupons, and httpx driving the ASGI app from synchronous code.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.from_thread import start_blocking_portal
from helpers import MINIMAL_SPEC, write_project
from starlette.applications import Starlette

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
