"""The back end's test fixtures, for a test module that names this module in
`pytest_plugins` (it is then loaded once, so one PostgreSQL cluster serves every module):
`database` (each test runs on SQLite and on PostgreSQL) and `serve` (the app of a shop
on it, its Alipay the sandbox). Their types and helpers are in serve_support.py.

PostgreSQL is a throwaway cluster the session starts (tests/pg_cluster.py): without the
server binaries these tests skip, except in CI (`CI` set), where they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import PostgresCluster, server_binaries
from serve_support import (
    FAST_RETRY,
    OTHER_APPID,
    SECRET,
    ApiClient,
    Clock,
    Database,
    Served,
    coupon,
    unavailable,
    write_spec,
)

from builder.serve.app import Limits, create_app
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import load_merchant


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bin_dir = server_binaries()
    if bin_dir is None:
        unavailable("PostgreSQL's server binaries are not installed (apt-get install postgresql)")
    assert bin_dir is not None
    with PostgresCluster(bin_dir) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database("sqlite", f"sqlite:///{tmp_path / 'serve.sqlite3'}", None)
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return Database("postgresql", cluster.new_database(), cluster)


@pytest.fixture
def serve(database: Database, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """serve(coupons, ...) -> Served: the app of one shop (appid APPID; OTHER_APPID too
    with other_app=True) on `database`, its Alipay the sandbox, its clock at NOON."""
    stack = ExitStack()

    def start(coupons: tuple[dict[str, Any], ...] = (coupon("welcome"),), *,
              limits: Limits = FAST_RETRY, timeout: float = 5.0, busy_timeout: float = 5.0,
              other_app: bool = False) -> Served:
        merchants = [load_merchant(write_spec(tmp_path / "shop", coupons))]
        if other_app:
            merchants.append(load_merchant(write_spec(tmp_path / "other", coupons, OTHER_APPID)))
        try:
            sandbox = stack.enter_context(LocalSandbox(merchants, timeout=timeout))
        except PermissionError:
            unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
        clock = Clock()
        app = create_app(merchants, database.url, alipay=sandbox.alipay, secret=SECRET, limits=limits, clock=clock,
                         busy_timeout=busy_timeout)
        stack.callback(app.state.api.storage.dispose)
        api = ApiClient(app)
        stack.callback(api.close)
        return Served(app, api, sandbox, clock, database)

    yield start
    stack.close()
