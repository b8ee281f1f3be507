"""Background work of `mpforge serve` on procrastinate's job queue: settling the claims
Alipay did not answer, and the plugins' periodic tasks.

The claims table stays the source of truth; a job only says "look at claim N again".
`settle_claim(claim_id)` asks Alipay once more for a pending send-route claim, with the
claim's own out_biz_no (Alipay answers a repeat with the voucher it already issued),
and records the outcome exactly as a client's retry would (builder.serve.claims). While
Alipay still does not answer, procrastinate runs the job again after a growing wait, a
bounded number of times; after the last the claim stays pending and is logged, for a
retry of its Idempotency-Key or the next sweep.

Jobs are deferred when a claim request ends with its claim still pending, and by the
sweep (`sweep_pending_claims`) at start-up and every few minutes, which defers a job
for every pending send-route claim older than a few seconds. So a queue that loses its
jobs (the in-memory one, when the process dies) loses nothing: the next start finds the
claims in the table.

The plugins' periodic tasks (`PeriodicTask`, from the mpforge_serve_tasks hook; e.g.
the ordering plugin's reconciliation of unpaid orders) are procrastinate periodic tasks
on the same queue, deferred by their cron (every minute by default; when the worker
starts, procrastinate defers each task's latest tick if it is less than 10 minutes
old, so a start runs them at once), each run a blocking call in a thread, given the
`TaskContext` (storage, Alipay clients, each app's spec sections and assets folder).
On PostgreSQL each tick is deferred once however many processes run (procrastinate
records the tick in procrastinate_periodic_defers), so one process runs it, and the
task's queueing lock keeps at most one run waiting. Runs are not otherwise kept apart:
a procrastinate `lock` would, but a process dying mid-run leaves its job `doing` for
good, which would hold every later run up. So a run that outlasts its tick may
overlap the next, and a task's changes must be safe to make twice at once (the
ordering plugin's are: each is a state-machine move under the order's row lock; the
membership plugin's card setup takes a lease on its row).

Where the queue lives:

* PostgreSQL: procrastinate's own tables, in the same database (PsycopgConnector). Every
  `mpforge serve` process runs a worker; any of them takes any job, and a job deferred
  by a process that dies is run by another. The schema is applied at start-up under the
  migration lock (`apply_queue_schema`).
* SQLite: procrastinate needs PostgreSQL for a shared queue, so each process keeps its
  queue in memory (`MemoryQueue`) and settles its own claims; the sweep covers a restart.

The worker runs inside the serve process, started and stopped by the app's lifespan
(`ClaimJobs.running`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import procrastinate
from anyio import to_thread
from procrastinate import testing
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.schema import SchemaManager
from sqlalchemy import text
from sqlalchemy.engine import make_url

from builder.serve import claims
from builder.serve.alipay_client import AlipayClient
from builder.serve.business_events import BusinessEvent
from builder.serve.storage import MIGRATION_LOCK_ID, POSTGRESQL_PREFIX, Claim, Route, Status, Storage

LOG = logging.getLogger(__name__)
QUEUE = "claims"
SETTLE_TASK = "mpforge.settle_claim"
SWEEP_TASK = "mpforge.sweep_pending_claims"
PLUGIN_TASK = "mpforge.task.{name}"  # a plugin's periodic task's name in procrastinate
# The newest of procrastinate's migrations that its schema.sql (applied by
# `apply_queue_schema`) includes. pyproject.toml pins procrastinate to the releases
# whose schema this is; moving the pin means applying its newer migrations
# (procrastinate/sql/migrations) in a start-up step first. tests/test_serve_jobs.py
# checks the installed release against this.
QUEUE_SCHEMA_MIGRATION = "03.04.00_50_post_add_retry_failed_job_procedure.sql"
ONE_TRY = claims.RetryPolicy(attempts=1, delays=(0.0,))


@dataclass(frozen=True)
class JobPolicy:
    """first_delay: seconds between a request ending pending and the job's first try;
    attempts: the job's tries at most; backoff: the wait before try n+1 is backoff**n
    seconds (2: 2, 4, 8, 16 s...); stale: a pending claim at least this old is the
    sweep's to defer (younger ones are still in their request); sweep_cron: when the
    sweep runs besides start-up; poll_seconds: how often the worker looks for jobs whose
    time has come; concurrency: jobs run at once by this process."""

    first_delay: int = 2
    attempts: int = 6
    backoff: int = 2
    stale: timedelta = timedelta(seconds=10)
    sweep_cron: str = "*/5 * * * *"
    poll_seconds: float = 1.0
    concurrency: int = 4

    def __post_init__(self) -> None:
        # procrastinate counts retries (attempts - 1), and reads 0 retries as "no limit".
        if self.attempts < 2 or self.first_delay < 0 or self.backoff < 1 or self.concurrency < 1:
            raise ValueError("a job policy makes at least 2 attempts, waits no negative time and runs at least one "
                             "job at once")


def _announce_nothing(_event: BusinessEvent) -> None:
    """A context's announce when no plugin listens (a queue made without an app)."""


@dataclass(frozen=True)
class TaskContext:
    """What a plugin's periodic task (and its `mpforge_serve_event` listener) works with:
    the storage, each app's Alipay client, and each app's spec sections of the plugins
    (Merchant.sections, e.g. "ordering"), both by app id; `announce` tells every plugin
    of a BusinessEvent (builder.serve.business_events); `assets_dirs`: each app's assets
    folder (Merchant.assets_dir) by app id, for a task sending Alipay a spec's file
    (e.g. the membership plugin uploads the member card's images)."""

    storage: Storage
    clients: Mapping[str, AlipayClient]
    sections: Mapping[str, Mapping[str, Any]]
    announce: Callable[[BusinessEvent], None] = _announce_nothing
    assets_dirs: Mapping[str, Path | None] = field(default_factory=dict)


@dataclass(frozen=True)
class PeriodicTask:
    """A plugin's task run on the job queue by `mpforge serve`, by `cron` (five-field
    cron; every minute by default), and at start-up when its latest tick is less than
    10 minutes old. name: unique among every plugin's tasks (e.g. "ordering.reconcile");
    run: blocking, called in a thread with the TaskContext, safe to run twice at once;
    an exception is logged and the next tick runs it again."""

    name: str
    run: Callable[[TaskContext], None]
    cron: str = "* * * * *"


class StillPending(Exception):
    """Alipay gave no verified answer to the job's try: procrastinate tries again later."""


class MemoryQueue(testing.InMemoryConnector):
    """procrastinate's in-memory queue, for SQLite, kept from growing in a long-running
    process: procrastinate made it for tests, and it remembers every query it is asked
    and every job's events. This one remembers neither; finished jobs are deleted by the
    worker (delete_jobs="always")."""

    async def generic_execute(self, query: str, suffix: Literal["run", "one", "all"], **arguments: Any) -> Any:
        return await getattr(self, f"{self.reverse_queries[query]}_{suffix}")(**arguments)

    async def finish_job_run(self, job_id: int, status: str, delete_job: bool) -> None:
        await super().finish_job_run(job_id, status, delete_job)
        if delete_job:
            self.events.pop(job_id, None)


def queue_conninfo(database_url: str) -> str:
    """The libpq URL of the PostgreSQL database behind `database_url` (whatever driver
    SQLAlchemy's URL names)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def apply_queue_schema(storage: Storage) -> None:
    """Create procrastinate's tables in the storage's PostgreSQL database unless they are
    there, under the same lock as `Storage.migrate`, in one transaction: processes
    starting at once wait for each other and the first one creates them."""
    with storage.engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
            # The driver's cursor, given no parameters, runs the script as it is (its
            # "%" are no placeholders).
            cursor = conn.connection.cursor()
            cursor.execute(SchemaManager.get_schema())
            cursor.close()


def _report_end(worker: asyncio.Task[None]) -> None:
    """Log a worker that stopped by itself: until the process restarts, pending claims
    wait for their clients' retries."""
    if not worker.cancelled() and worker.exception() is not None:
        # The class only: a database error's message may quote SQL or connection details.
        LOG.error("the job worker stopped (%s); pending claims wait for their clients' retries until a restart",
                  type(worker.exception()).__name__)


class ClaimJobs:
    """The job queue of one serve process: its procrastinate app, the tasks, the worker."""

    def __init__(self, storage: Storage, clients: Mapping[str, AlipayClient], database_url: str,
                 policy: JobPolicy, *, context: TaskContext | None = None,
                 tasks: Sequence[PeriodicTask] = ()) -> None:
        self.storage = storage
        self.clients = clients
        self.policy = policy
        self.context = context or TaskContext(storage, clients, {})
        self.shared = storage.dialect == POSTGRESQL_PREFIX
        connector: procrastinate.BaseConnector = (
            procrastinate.PsycopgConnector(conninfo=queue_conninfo(database_url), min_size=1, max_size=4)
            if self.shared else MemoryQueue())
        self.app = procrastinate.App(connector=connector)
        self.settle = self.app.task(name=SETTLE_TASK, queue=QUEUE, pass_context=True, retry=procrastinate.RetryStrategy(
            max_attempts=policy.attempts - 1, exponential_wait=policy.backoff,
            retry_exceptions={StillPending}))(self._settle_claim)
        sweep = self.app.task(name=SWEEP_TASK, queue=QUEUE)(self._sweep)
        self.app.periodic(cron=policy.sweep_cron, periodic_id=QUEUE)(sweep)
        self.tasks = [self._add_task(task) for task in tasks]
        self._running = False

    def _add_task(self, task: PeriodicTask) -> procrastinate.tasks.Task[..., Any, ...]:
        """`task` as a procrastinate periodic task, at most one run waiting (queueing_lock)."""
        name = PLUGIN_TASK.format(name=task.name)

        async def run(timestamp: int) -> None:
            await to_thread.run_sync(task.run, self.context)

        registered = self.app.task(name=name, queue=QUEUE, queueing_lock=name)(run)
        self.app.periodic(cron=task.cron, periodic_id=name)(registered)
        return registered

    def prepare(self) -> None:
        """Make the queue's storage ready (PostgreSQL: its tables); at start-up, before serving."""
        if self.shared:
            apply_queue_schema(self.storage)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The queue open and this process's worker running, for the app's lifespan; the
        sweep defers the claims an earlier run left pending."""
        async with self.app.open_async():
            worker = asyncio.create_task(self.app.run_worker_async(
                queues=[QUEUE], name="mpforge-serve", concurrency=self.policy.concurrency,
                fetch_job_polling_interval=self.policy.poll_seconds, install_signal_handlers=False,
                delete_jobs="successful" if self.shared else "always", shutdown_graceful_timeout=5))
            worker.add_done_callback(_report_end)
            self._running = True
            try:
                await self._sweep(timestamp=0)
                yield
            finally:
                self._running = False
                worker.cancel()
                # The worker ends its jobs (or abandons them after the graceful timeout;
                # an abandoned claim stays pending, for the next start's sweep). Waited
                # for, never raised: how it ended, _report_end has logged.
                await asyncio.wait([worker])

    async def settle_later(self, claim: Claim) -> None:
        """Have the worker settle `claim` if a request leaves it pending on the send route."""
        if claim.status is Status.PENDING and claim.route is Route.SEND:
            await self._defer(claim.id, self.policy.first_delay)

    async def _defer(self, claim_id: int, delay: int) -> None:
        if not self._running:
            # No queue yet (or any more): the claim is in the table, and the sweep of the
            # next start defers it.
            LOG.info("claim %s: left pending for the next start's sweep (the job queue is not running)", claim_id)
            return
        try:
            await self.settle.configure(queueing_lock=f"claim-{claim_id}", schedule_in={"seconds": delay}) \
                .defer_async(claim_id=claim_id)
        except AlreadyEnqueued:
            pass  # a job for this claim is waiting already
        except ConnectorException as exc:
            # The queue's database is unreachable: the request still gets its answer, and
            # the claim, in the table, is the next sweep's.
            LOG.warning("claim %s: could not queue its job (%s); the next sweep will", claim_id, type(exc).__name__)

    async def _sweep(self, timestamp: int) -> None:
        """Defer a job for every pending send-route claim old enough not to be in its
        request still. `timestamp`: the periodic run's time (procrastinate's; unused)."""
        before = self.storage.clock() - self.policy.stale
        pending = await to_thread.run_sync(self.storage.pending_sends, before)
        if pending:
            LOG.info("sweep: %d pending claims to settle", len(pending))
        for claim_id in pending:
            await self._defer(claim_id, 0)

    async def _settle_claim(self, context: procrastinate.JobContext, claim_id: int) -> None:
        claim = await to_thread.run_sync(self.storage.claim, claim_id)
        if claim is None or claim.status is not Status.PENDING or claim.route is not Route.SEND:
            return  # settled meanwhile (a client's retry, another worker), or never Alipay's to issue
        client = self.clients.get(claim.appid)
        if client is None:
            LOG.warning("claim %s: app %s is not served by this process; left pending", claim.id, claim.appid)
            return
        settled = await claims.resume(self.storage, client, claim, claim.coupon_id, claim.ch_info, ONE_TRY)
        if settled.status is not Status.PENDING:
            return
        tried = (context.job.attempts if context.job else 0) + 1
        if tried < self.policy.attempts:
            raise StillPending(claim_id)
        LOG.warning("claim %s: Alipay did not answer %d tries of the job; it stays pending until its "
                    "Idempotency-Key is retried or the next sweep", claim_id, tried)
