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

The server, the databases and the customers' requests: bench/serve_load.py, as for
bench/claims_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from serve_load import all_at_once, cpu_seconds, database_url, latency_ms, log_in, report_checks, server
from sqlalchemy import create_engine, select
from synthetic import REPO

from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import load_merchant
from builder.serve.storage import engine_url
from plugins.ordering.orders import ORDERS
from plugins.ordering.sandbox import trades
from plugins.ordering.stock import PRODUCT_STOCK

sys.path.insert(0, str(REPO / "tests"))
from helpers import write_project  # noqa: E402
from serve_support import APPID  # noqa: E402
from test_ordering import shop_spec  # noqa: E402

PRODUCT = "croissant"
ORDER = {"store": "main", "mode": "dine_in", "lines": [{"product": PRODUCT, "quantity": 1}]}


def write_shop(folder: Path, stock: int) -> Path:
    """The tests' coffee shop, open at any hour, no minimum, its croissant limited to `stock`."""
    spec = shop_spec(minimum=0, hours=[])
    next(p for p in spec["catalogue"]["products"] if p["id"] == PRODUCT)["stock"] = stock
    return write_project(folder, spec)


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
        wall, latencies, responses = asyncio.run(all_at_once(base, tokens, f"/api/v1/{APPID}/orders", ORDER))
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
    return {"database": kind, "customers": customers, "stock": stock, "orders_per_s": customers / wall,
            "wall_s": wall, "server_cpu_ms": server_cpu / customers * 1000, **latency_ms(latencies),
            "payments_per_s": len(created) / pay_wall if created else 0.0,
            "other": sorted(set(answers) - {"created", "sold_out"}), "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--stock", type=int, default=50)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL too (a throwaway cluster)")
    args = parser.parse_args()
    rows, ok = [], True
    for kind in ["sqlite", "postgresql"] if args.pg else ["sqlite"]:
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpforge-orders-load-")))
            database = database_url(kind, folder, stack)
            if database is None:
                ok = False
                continue
            row = run(kind, database, args.customers, args.stock, folder)
        rows.append(row)
        ok = report_checks(kind, row) and ok
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
