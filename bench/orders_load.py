"""Load on ordering: 200 customers order a product with 50 in stock at the same moment,
then every order created is paid.

    python bench/orders_load.py [--customers 200] [--stock 50] [--pg]

For each database (SQLite; PostgreSQL too with --pg): the back end (`create_app`, with
the ordering plugin) served by uvicorn in a process of its own, Alipay's part played by
the sandbox gateway in this process (on 127.0.0.N:80, so run as root), each customer
logged in first with a session of their own (alipay.system.oauth.token through the
SDK), then every order sent at once, one connection each (POST /orders: priced, stock
reserved, alipay.trade.create), then each order created paid through the sandbox's
`POST /sandbox/pay`, which posts Alipay's signed notification to the server.

Checks: exactly `stock` orders created and paid (in the answers, the database and the
sandbox's trades), every other customer told 409 sold_out, no other answer, nothing
left in stock. Prints orders/s and the p50/p95/max latency of an order, and payments/s.

As bench/claims_load.py (whose `log_in` and `cpu_seconds` it shares): PostgreSQL is a
throwaway cluster with its default durability (tests/pg_cluster.py; Debian's postgresql
package), SQLite a file in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from claims_load import cpu_seconds, log_in
from sqlalchemy import create_engine, select
from synthetic import REPO

from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import AlipayConfig, AppKeys, load_merchant
from builder.serve.storage import engine_url
from plugins.ordering.orders import ORDERS
from plugins.ordering.sandbox import trades
from plugins.ordering.serve import PUBLIC_URL_VARIABLE
from plugins.ordering.stock import PRODUCT_STOCK

sys.path.insert(0, str(REPO / "tests"))
from helpers import write_project  # noqa: E402
from pg_cluster import PostgresCluster, server_binaries  # noqa: E402
from serve_support import APPID  # noqa: E402
from test_ordering import shop_spec  # noqa: E402

PRODUCT = "croissant"
ORDER = {"store": "main", "mode": "dine_in", "lines": [{"product": PRODUCT, "quantity": 1}]}


def write_shop(folder: Path, stock: int) -> Path:
    """The tests' coffee shop, open at any hour, no minimum, its croissant limited to `stock`."""
    spec = shop_spec(minimum=0, hours=[])
    next(p for p in spec["catalogue"]["products"] if p["id"] == PRODUCT)["stock"] = stock
    return write_project(folder, spec)


def serve_process(config_file: str) -> None:
    """The server process: the app from the config the bench wrote, on uvicorn, with its
    public URL (where the sandbox posts payment notifications) set."""
    import uvicorn

    from builder.serve.app import create_app
    from builder.serve.keys import KeySource

    config = json.loads(Path(config_file).read_text())
    os.environ[PUBLIC_URL_VARIABLE] = f"http://127.0.0.1:{config['port']}"
    merchant = load_merchant(config["spec"])
    alipay = AlipayConfig({APPID: AppKeys(KeySource(file=Path(config["private_key"])),
                                          KeySource(file=Path(config["alipay_key"])))},
                          gateway_url=config["gateway"], timeout=10.0)
    app = create_app([merchant], config["database"], alipay=alipay, secret=bytes.fromhex(config["secret"]))
    uvicorn.run(app, host="127.0.0.1", port=config["port"], log_level="warning", backlog=4096)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(spec: Path, database: str, sandbox: LocalSandbox, folder: Path) -> Iterator[tuple[str, int]]:
    """The back end in a process of its own; yields its base URL and process id."""
    keys = sandbox.alipay.apps[APPID]
    port = _free_port()
    config = folder / "serve.json"
    config.write_text(json.dumps({"spec": str(spec), "database": database, "port": port,
                                  "secret": secrets.token_hex(32), "gateway": sandbox.alipay.gateway_url,
                                  "private_key": str(keys.app_private_key.file),
                                  "alipay_key": str(keys.alipay_public_key.file)}))
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(config)], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


async def order_all(base: str, tokens: list[str]) -> tuple[float, list[float], list[httpx.Response]]:
    """Every order at once, each on its own connection: wall seconds, latencies, responses."""
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as client:
        start = asyncio.Event()

        async def one(token: str) -> tuple[float, httpx.Response]:
            await start.wait()
            began = time.perf_counter()
            response = await client.post(f"/api/v1/{APPID}/orders", json=ORDER,
                                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "tap-1"})
            return time.perf_counter() - began, response

        tasks = [asyncio.ensure_future(one(t)) for t in tokens]
        await asyncio.sleep(0.1)  # every task is waiting at the gate
        began = time.perf_counter()
        start.set()
        done = await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return wall, [d[0] for d in done], [d[1] for d in done]


async def pay_all(sandbox: LocalSandbox, out_trade_nos: list[str]) -> tuple[float, list[dict[str, Any]]]:
    """Each order paid in the sandbox (which notifies the server), 20 at a time: wall
    seconds and the sandbox's answers."""
    gate = asyncio.Semaphore(20)
    async with httpx.AsyncClient(base_url=f"http://{sandbox.server.host}", timeout=120) as client:

        async def one(out_trade_no: str) -> dict[str, Any]:
            async with gate:
                response = await client.post("/sandbox/pay", json={"appId": APPID, "outTradeNo": out_trade_no})
            answer: dict[str, Any] = response.json()
            return answer

        began = time.perf_counter()
        answers = await asyncio.gather(*(one(n) for n in out_trade_nos))
    return time.perf_counter() - began, list(answers)


def _answer(response: httpx.Response) -> str:
    if response.status_code == 201:
        return "created"
    if response.status_code == 409:
        return str(response.json()["error"]["code"])
    return f"HTTP {response.status_code}"


def run(kind: str, database: str, customers: int, stock: int, folder: Path) -> dict[str, object]:
    spec = write_shop(folder / "shop", stock)
    with LocalSandbox([load_merchant(spec)], timeout=30) as sandbox, \
            server(spec, database, sandbox, folder) as (base, pid):
        tokens = asyncio.run(log_in(base, customers))
        cpu_before = cpu_seconds(pid)
        wall, latencies, responses = asyncio.run(order_all(base, tokens))
        server_cpu = cpu_seconds(pid) - cpu_before
        created = [r.json()["id"] for r in responses if r.status_code == 201]
        pay_wall, paid = asyncio.run(pay_all(sandbox, created))
        in_sandbox = [trades(sandbox.state).get(APPID, n) for n in created]
    sandbox_paid = [t for t in in_sandbox if t is not None and t.status == "TRADE_SUCCESS"]
    answers = [_answer(r) for r in responses]
    engine = create_engine(engine_url(database))
    with engine.connect() as conn:
        stored = conn.execute(select(ORDERS.c.status, ORDERS.c.user_kind, ORDERS.c.alipay_user)).all()
        left = conn.execute(select(PRODUCT_STOCK.c.remaining).where(PRODUCT_STOCK.c.product == PRODUCT)).scalar_one()
    engine.dispose()
    paid_rows = [row for row in stored if row.status == "paid"]
    customers_paid = {(row.user_kind, row.alipay_user) for row in paid_rows}
    checks = {
        f"{stock} orders created": answers.count("created") == stock,
        f"{customers - stock} told sold_out (409)": answers.count("sold_out") == customers - stock,
        f"{stock} paid (notified: success), in the sandbox and the database, to {stock} customers":
            [p.get("notifyAnswer") for p in paid] == ["success"] * stock and len(sandbox_paid) == stock
            and len(paid_rows) == stock == len(stored) and len(customers_paid) == stock,
        "no stock left": left == 0,
    }
    latencies.sort()
    return {"database": kind, "customers": customers, "stock": stock, "orders_per_s": customers / wall,
            "wall_s": wall, "server_cpu_ms": server_cpu / customers * 1000,
            "p50_ms": statistics.median(latencies) * 1000, "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
            "max_ms": latencies[-1] * 1000, "payments_per_s": len(created) / pay_wall if created else 0.0,
            "other": sorted(set(answers) - {"created", "sold_out"}), "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--stock", type=int, default=50)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL too (a throwaway cluster)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the server process's own entry
    args = parser.parse_args()
    if args.serve:
        serve_process(args.serve)
        return 0
    rows, ok = [], True
    for kind in ["sqlite", "postgresql"] if args.pg else ["sqlite"]:
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpforge-orders-load-")))
            if kind == "sqlite":
                database = f"sqlite:///{folder / 'serve.sqlite3'}"
            else:
                bin_dir = server_binaries()
                if bin_dir is None:
                    print("postgresql: skipped, the server binaries are not installed (apt-get install postgresql)")
                    ok = False
                    continue
                database = stack.enter_context(PostgresCluster(bin_dir, durable=True)).new_database()
            row = run(kind, database, args.customers, args.stock, folder)
        rows.append(row)
        checks = row["checks"]
        assert isinstance(checks, dict)
        ok = ok and all(checks.values()) and not row["other"]
        for name, passed in checks.items():
            print(f"{kind}: {'ok  ' if passed else 'FAIL'} {name}")
        if row["other"]:
            print(f"{kind}: FAIL other answers: {row['other']}")
    print()
    print(f"{os.cpu_count()} CPUs; server CPU: the server process's CPU time per order (its work and the database "
          "driver's; PostgreSQL's own processes not counted); an order includes alipay.trade.create (sandbox)")
    print("| database | customers | stock | orders/s | wall s | p50 ms | p95 ms | max ms | server CPU ms "
          "| payments/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['database']} | {r['customers']} | {r['stock']} | {r['orders_per_s']:.0f} | {r['wall_s']:.2f} "
              f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} | {r['server_cpu_ms']:.1f} "
              f"| {r['payments_per_s']:.0f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
