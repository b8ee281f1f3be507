"""Load on coupon claims: 1,000 users claim a coupon with 100 in stock at the same moment.

    python bench/claims_load.py [--users 1000] [--stock 100] [--database sqlite postgresql]

For each database: the back end (`create_app`) served by uvicorn in a process of its
own, Alipay's part played by the sandbox gateway in this process (on 127.0.0.N:80, so
run as root), the users logged in first (alipay.system.oauth.token through the SDK),
then every claim sent at once, one connection each. Checks that exactly `stock`
vouchers were issued, to different users, none twice (in the database and in the
sandbox), and prints claims/s and the p50/p95/max latency of a claim.

PostgreSQL is a throwaway cluster with its default durability (tests/pg_cluster.py;
Debian's postgresql package). SQLite is a file in a temporary folder.
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

import httpx
from sqlalchemy import create_engine, select
from synthetic import REPO

from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import AlipayConfig, AppKeys, load_merchant
from builder.serve.storage import CLAIMS, COUNTERS, engine_url

sys.path.insert(0, str(REPO / "tests"))
from pg_cluster import PostgresCluster, server_binaries  # noqa: E402
from serve_support import APPID, coupon, write_spec  # noqa: E402


def serve_process(config_file: str) -> None:
    """The server process: the app from the config the bench wrote, on uvicorn."""
    import uvicorn

    from builder.serve.app import create_app
    from builder.serve.keys import KeySource

    config = json.loads(Path(config_file).read_text())
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(spec: Path, database: str, sandbox: LocalSandbox, folder: Path) -> Iterator[tuple[str, int]]:
    """The back end in a process of its own; yields its base URL and process id."""
    keys = sandbox.alipay.apps[APPID]
    port = _free_port()
    config = folder / "serve.json"
    config.write_text(json.dumps({"spec": str(spec), "database": database, "port": port,
                                  "secret": secrets.token_hex(32),
                                  "gateway": sandbox.alipay.gateway_url,
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


async def log_in(base: str, users: int) -> list[str]:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        gate = asyncio.Semaphore(50)

        async def one(n: int) -> str:
            async with gate:
                response = await client.post(f"/api/v1/{APPID}/session", json={"authCode": f"sandbox-user-{n}"})
            response.raise_for_status()
            token: str = response.json()["token"]
            return token

        return list(await asyncio.gather(*(one(n) for n in range(users))))


async def claim_all(base: str, tokens: list[str]) -> tuple[float, list[float], list[httpx.Response]]:
    """Every claim at once, each on its own connection: wall seconds, latencies, responses."""
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as client:
        start = asyncio.Event()

        async def one(token: str) -> tuple[float, httpx.Response]:
            await start.wait()
            began = time.perf_counter()
            response = await client.post(f"/api/v1/{APPID}/coupons/welcome/claims",
                                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "tap-1"})
            return time.perf_counter() - began, response

        tasks = [asyncio.ensure_future(one(t)) for t in tokens]
        await asyncio.sleep(0.1)  # every task is waiting at the gate
        began = time.perf_counter()
        start.set()
        done = await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return wall, [d[0] for d in done], [d[1] for d in done]


def run(kind: str, database: str, users: int, stock: int, folder: Path) -> dict[str, object]:
    spec = write_spec(folder / "shop", [coupon("welcome", stock=stock, per_user_limit=1)])
    with LocalSandbox([load_merchant(spec)]) as sandbox, server(spec, database, sandbox, folder) as (base, pid):
        started = time.perf_counter()
        tokens = asyncio.run(log_in(base, users))
        login_seconds = time.perf_counter() - started
        cpu_before = cpu_seconds(pid)
        wall, latencies, responses = asyncio.run(claim_all(base, tokens))
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
    latencies.sort()
    return {"database": kind, "users": users, "stock": stock, "logins_per_s": users / login_seconds,
            "claims_per_s": users / wall, "wall_s": wall, "server_cpu_ms": server_cpu / users * 1000,
            "p50_ms": statistics.median(latencies) * 1000, "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
            "max_ms": latencies[-1] * 1000,
            "other": sorted(set(results) - {"CLAIMED", "SOLD_OUT"}), "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--database", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the server process's own entry
    args = parser.parse_args()
    if args.serve:
        serve_process(args.serve)
        return 0
    rows, ok = [], True
    for kind in args.database:
        with ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpforge-claims-load-")))
            if kind == "sqlite":
                database = f"sqlite:///{folder / 'serve.sqlite3'}"
            else:
                bin_dir = server_binaries()
                if bin_dir is None:
                    print("postgresql: skipped, the server binaries are not installed (apt-get install postgresql)")
                    continue
                database = stack.enter_context(PostgresCluster(bin_dir, durable=True)).new_database()
            row = run(kind, database, args.users, args.stock, folder)
        rows.append(row)
        checks = row["checks"]
        assert isinstance(checks, dict)
        ok = ok and all(checks.values()) and not row["other"]
        for name, passed in checks.items():
            print(f"{kind}: {'ok  ' if passed else 'FAIL'} {name}")
        if row["other"]:
            print(f"{kind}: FAIL other answers: {row['other']}")
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
