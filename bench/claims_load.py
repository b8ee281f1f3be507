"""Load on coupon claims: 1,000 users claim a coupon with 100 in stock at the same moment.

    python bench/claims_load.py [--users 1000] [--stock 100] [--database sqlite postgresql]

For each database: the back end (`create_app`) served by uvicorn in a process of its
own, Alipay's part played by the sandbox gateway in this process (on 127.0.0.N:80, so
run as root), the users logged in first (alipay.system.oauth.token through the SDK),
then every claim sent at once, one connection each. Checks that exactly `stock`
vouchers were issued, to different users, none twice (in the database and in the
sandbox), and prints claims/s and the p50/p95/max latency of a claim.

The server, the databases and the users' requests: bench/serve_load.py.
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

from serve_load import all_at_once, cpu_seconds, database_url, latency_ms, log_in, report_checks, server
from sqlalchemy import create_engine, select
from synthetic import REPO

from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import load_merchant
from builder.serve.storage import CLAIMS, COUNTERS, engine_url

sys.path.insert(0, str(REPO / "tests"))
from serve_support import APPID, coupon, write_spec  # noqa: E402


def run(kind: str, database: str, users: int, stock: int, folder: Path) -> dict[str, object]:
    spec = write_spec(folder / "shop", [coupon("welcome", stock=stock, per_user_limit=1)])
    with LocalSandbox([load_merchant(spec)]) as sandbox, server(spec, database, sandbox, folder) as (base, pid):
        started = time.perf_counter()
        tokens = asyncio.run(log_in(base, users))
        login_seconds = time.perf_counter() - started
        cpu_before = cpu_seconds(pid)
        wall, latencies, responses = asyncio.run(all_at_once(base, tokens, f"/api/v1/{APPID}/coupons/welcome/claims"))
        server_cpu = cpu_seconds(pid) - cpu_before
        vouchers = sandbox.state.issued("act-welcome")
    results = [r.json()["result"] if r.status_code in (201, 409) else f"HTTP {r.status_code}" for r in responses]
    engine = create_engine(engine_url(database))
    with engine.connect() as conn:
        issued = conn.execute(select(CLAIMS).where(CLAIMS.c.status == "issued")).all()
        taken = conn.execute(select(COUNTERS.c.taken)).scalar_one()
    engine.dispose()
    codes = [r.json()["voucherCode"] for r in responses if r.status_code == 201]
    checks = {
        f"{stock} CLAIMED": results.count("CLAIMED") == stock,
        f"{users - stock} SOLD_OUT": results.count("SOLD_OUT") == users - stock,
        f"{stock} issued in the database, to {stock} users": len(issued) == stock
        and len({(c.user_kind, c.alipay_user) for c in issued}) == stock and taken == stock,
        f"{stock} vouchers in the sandbox, to {stock} users, none twice": len(vouchers) == stock
        and len({v.user_id for v in vouchers}) == stock and len(set(codes)) == stock
        and sorted(codes) == sorted(v.voucher_code for v in vouchers),
    }
    return {"database": kind, "users": users, "stock": stock, "logins_per_s": users / login_seconds,
            "claims_per_s": users / wall, "wall_s": wall, "server_cpu_ms": server_cpu / users * 1000,
            **latency_ms(latencies), "other": sorted(set(results) - {"CLAIMED", "SOLD_OUT"}), "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    rows, ok = [], True
    for kind in args.database:
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpforge-claims-load-")))
            database = database_url(kind, folder, stack)
            if database is None:
                continue
            row = run(kind, database, args.users, args.stock, folder)
        rows.append(row)
        ok = report_checks(kind, row) and ok
    print()
    print(f"{os.cpu_count()} CPUs; server CPU: the server process's CPU time per claim (its work and the "
          "database driver's; PostgreSQL's own processes not counted)")
    print("| database | users | stock | logins/s | claims/s | wall s | p50 ms | p95 ms | max ms | server CPU ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['database']} | {r['users']} | {r['stock']} | {r['logins_per_s']:.0f} | {r['claims_per_s']:.0f} "
              f"| {r['wall_s']:.2f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} "
              f"| {r['server_cpu_ms']:.1f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
