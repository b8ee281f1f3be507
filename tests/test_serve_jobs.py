"""The job queue settles the claims Alipay did not answer (builder/serve/jobs.py), on
SQLite (procrastinate's queue in memory) and PostgreSQL (its tables), with the real SDK
against the sandbox gateway:

- a claim whose every call timed out is issued by the job, with no retry by the client,
  into exactly one voucher under its own out_biz_no;
- a new app on the same database (a restart) settles the claims the last one left;
- Alipay refusing the job's try fails the claim and gives its stock back;
- the job gives up after its attempts, leaving the claim pending for the client;
- procrastinate's schema is applied once however many processes start at once.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from procrastinate.schema import SchemaManager
from serve_support import APPID, SECRET, ApiClient, Database, claim_request, coupon, unavailable, write_spec
from sqlalchemy import select, text

from builder.serve.app import Limits, create_app
from builder.serve.claims import RetryPolicy
from builder.serve.jobs import QUEUE_SCHEMA_MIGRATION, JobPolicy, MemoryQueue
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import Merchant, load_merchant
from builder.serve.sandbox_state import Faults
from builder.serve.storage import CLAIMS, COUNTERS, Storage

pytest_plugins = ["serve_fixtures"]  # database, postgres

FAST_RETRY = Limits(retry=RetryPolicy(attempts=2, delays=(0.05,)))
# The job tries at once, then after 1 s each time; the sweep takes any claim.
FAST_JOBS = JobPolicy(first_delay=0, attempts=4, backoff=1, stale=timedelta(0), poll_seconds=0.2)


@dataclass
class Shop:
    """One shop's merchants and sandbox; `app()` is a serve process on the database."""

    merchants: list[Merchant]
    sandbox: LocalSandbox
    database: Database
    stack: ExitStack

    def app(self, policy: JobPolicy = FAST_JOBS, *, running: bool = True) -> ApiClient:
        """A new app on the shop's database, its lifespan (and job worker) running unless
        `running` is False: a process that serves requests and dies before its jobs run."""
        app = create_app(self.merchants, self.database.url, alipay=self.sandbox.alipay, secret=SECRET,
                         limits=FAST_RETRY, job_policy=policy)
        api = ApiClient(app)
        self.stack.callback(api.close)
        if running:
            self.stack.enter_context(api.lifespan())
        else:
            self.stack.callback(app.state.api.storage.dispose)
        return api

    def login(self, api: ApiClient, name: str) -> str:
        response = api.post(f"/api/v1/{APPID}/session", json={"authCode": f"sandbox-user-{name}"})
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def claim(self, api: ApiClient, token: str, key: str) -> httpx.Response:
        return api.post(f"/api/v1/{APPID}/coupons/welcome/claims", **claim_request(token, key))

    def rows(self, api: ApiClient, table: Any) -> list[dict[str, Any]]:
        storage: Storage = api.app.state.api.storage
        with storage.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(select(table).order_by(*table.primary_key))]

    def taken(self, api: ApiClient) -> int:
        return int(self.rows(api, COUNTERS)[0]["taken"])

    def vouchers(self) -> list[str]:
        """The codes of every voucher the sandbox issued, sorted."""
        return sorted(v.voucher_code for v in self.sandbox.state.issued("act-welcome"))


def sandbox_code(out_biz_no: str) -> str:
    """The code the sandbox gives the voucher of `out_biz_no` (SandboxState.issue_voucher):
    a voucher with it was issued for that out_biz_no and no other."""
    return hashlib.sha256(f"voucher:act-welcome:{out_biz_no}".encode()).hexdigest()[:20].upper()


@pytest.fixture
def shop(database: Database, tmp_path: Path) -> Iterator[Shop]:  # noqa: F811 (the imported fixture)
    with ExitStack() as stack:
        merchants = [load_merchant(write_spec(tmp_path / "shop", [coupon("welcome", stock=5)]))]
        try:
            sandbox = stack.enter_context(LocalSandbox(merchants, timeout=0.3))
        except PermissionError:
            unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
        yield Shop(merchants, sandbox, database, stack)


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the job queue"
        time.sleep(0.05)


def statuses(shop: Shop, api: ApiClient) -> list[str]:
    return [row["status"] for row in shop.rows(api, CLAIMS)]


def test_the_job_issues_a_claim_alipay_never_answered_without_a_client_retry(shop: Shop) -> None:
    api = shop.app()
    token = shop.login(api, "7")
    shop.sandbox.state.faults = Faults(delay_seconds=1.0)  # every call times out, after issuing
    pending = shop.claim(api, token, "k1")
    assert pending.status_code == 503 and pending.json()["result"] == "PENDING"
    shop.sandbox.state.faults = Faults()
    wait_for(lambda: statuses(shop, api) == ["issued"])
    [claim] = shop.rows(api, CLAIMS)
    assert shop.vouchers() == [claim["voucher_code"]] == [sandbox_code(claim["out_biz_no"])]
    assert shop.taken(api) == 1
    done = shop.claim(api, token, "k1")  # the client comes back: the voucher is there
    assert done.status_code == 201 and done.json()["voucherCode"] == claim["voucher_code"]
    connector = api.app.state.api.jobs.app.connector
    if isinstance(connector, MemoryQueue):
        # Nothing is kept of a finished job: a long-running process does not grow.
        wait_for(lambda: not connector.jobs)
        assert connector.events == {} and connector.queries == []


def test_a_restart_settles_the_claims_the_last_process_left_pending(shop: Shop) -> None:
    dead = shop.app(running=False)  # its queue never runs: as if killed once the requests ended
    tokens = [shop.login(dead, str(n)) for n in range(3)]
    shop.sandbox.state.faults = Faults(delay_seconds=1.0)  # issued, the answer lost
    assert shop.claim(dead, tokens[0], "a").status_code == 503
    assert shop.claim(dead, tokens[1], "b").status_code == 503
    shop.sandbox.state.faults = Faults(busy=True)  # nothing issued
    assert shop.claim(dead, tokens[2], "c").status_code == 503
    assert len(shop.vouchers()) == 2 and statuses(shop, dead) == ["pending"] * 3
    shop.sandbox.state.faults = Faults()

    restarted = shop.app()
    wait_for(lambda: statuses(shop, restarted) == ["issued"] * 3)
    claims = shop.rows(restarted, CLAIMS)
    assert shop.vouchers() == sorted(c["voucher_code"] for c in claims) == sorted(
        sandbox_code(c["out_biz_no"]) for c in claims)
    assert shop.taken(restarted) == 3


def test_alipay_refusing_the_jobs_try_fails_the_claim_and_gives_the_stock_back(shop: Shop) -> None:
    api = shop.app()
    token = shop.login(api, "7")
    shop.sandbox.state.faults = Faults(busy=True)
    assert shop.claim(api, token, "k1").status_code == 503
    assert shop.taken(api) == 1
    shop.sandbox.state.add_activity("act-welcome", stock=0)  # Alipay's stock is gone meanwhile
    shop.sandbox.state.faults = Faults()
    wait_for(lambda: statuses(shop, api) == ["failed"])
    [claim] = shop.rows(api, CLAIMS)
    assert claim["error"] == "ALIPAY_REFUSED" and claim["alipay_sub_code"]
    assert shop.taken(api) == 0 and shop.vouchers() == []
    refused = shop.claim(api, token, "k1")
    assert refused.status_code == 409 and refused.json()["result"] == "REFUSED"


def test_the_job_gives_up_after_its_attempts_and_the_claim_stays_pending(
        shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    api = shop.app(JobPolicy(first_delay=0, attempts=2, backoff=1, stale=timedelta(hours=1), poll_seconds=0.2))
    token = shop.login(api, "7")
    shop.sandbox.state.faults = Faults(busy=True)
    with caplog.at_level(logging.WARNING, logger="builder.serve.jobs"):
        assert shop.claim(api, token, "k1").status_code == 503
        wait_for(lambda: any("did not answer 2 tries" in r.getMessage() for r in caplog.records))
    assert statuses(shop, api) == ["pending"] and shop.vouchers() == []
    shop.sandbox.state.faults = Faults()
    assert shop.claim(api, token, "k1").status_code == 201  # the client's retry still settles it
    assert len(shop.vouchers()) == 1


def test_the_installed_procrastinate_has_the_schema_the_start_up_applies() -> None:
    """Moving procrastinate's pin past a schema change fails here until its migrations
    are applied at start-up (see jobs.QUEUE_SCHEMA_MIGRATION)."""
    newest = max(Path(SchemaManager.get_migrations_path()).glob("*.sql")).name
    assert newest == QUEUE_SCHEMA_MIGRATION


def test_processes_starting_at_once_apply_the_queue_schema_once(
        postgres: Any, tmp_path: Path) -> None:  # noqa: F811 (the imported fixture)
    url = postgres.new_database()
    merchants = [load_merchant(write_spec(tmp_path / "shop", [coupon("welcome")]))]
    with LocalSandbox(merchants) as sandbox:
        errors: list[BaseException] = []
        apps: list[Any] = []

        def start() -> None:
            try:
                apps.append(create_app(merchants, url, alipay=sandbox.alipay, secret=SECRET))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for app in apps:
            app.state.api.storage.dispose()
    assert errors == [] and len(apps) == 4
    storage = Storage(url)
    try:
        with storage.engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar() is True
    finally:
        storage.dispose()
