"""What the back end's load benchmarks (claims_load.py, orders_load.py) share: the server
in a process of its own, the databases, the customers' log-ins, every request sent at
the same moment, the latency figures and the report.

The server process is this file run with `--serve CONFIG`: `create_app` from the config
the bench wrote (the spec, the database, the sandbox's keys and gateway), on uvicorn,
with its own address as its public URL (where the sandbox posts payment notifications).
PostgreSQL is a throwaway cluster with its default durability (tests/pg_cluster.py;
Debian's postgresql package); SQLite a file in the run's temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from synthetic import REPO

from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import AlipayConfig, AppKeys, load_merchant

sys.path.insert(0, str(REPO / "tests"))
from pg_cluster import PostgresCluster, server_binaries  # noqa: E402
from serve_support import APPID  # noqa: E402


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
    app = create_app([merchant], config["database"], alipay=alipay, secret=bytes.fromhex(config["secret"]),
                     public_url=f"http://127.0.0.1:{config['port']}")
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


def database_url(kind: str, folder: Path, stack: ExitStack) -> str | None:
    """A fresh database of `kind` (sqlite, postgresql) for one run; None (said why) when
    PostgreSQL's server is not installed."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'serve.sqlite3'}"
    bin_dir = server_binaries()
    if bin_dir is None:
        print("postgresql: skipped, the server binaries are not installed (apt-get install postgresql)")
        return None
    url: str = stack.enter_context(PostgresCluster(bin_dir, durable=True)).new_database()
    return url


async def log_in(base: str, users: int) -> list[str]:
    """Session tokens of sandbox users 0..users-1 (alipay.system.oauth.token through the SDK)."""
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


async def all_at_once(base: str, tokens: Sequence[str], path: str,
                      body: Any = None) -> tuple[float, list[float], list[httpx.Response]]:
    """One POST of `path` per token, all let go at the same moment, each on its own
    connection (Idempotency-Key tap-1): wall seconds, latencies, responses."""
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as client:
        start = asyncio.Event()

        async def one(token: str) -> tuple[float, httpx.Response]:
            await start.wait()
            began = time.perf_counter()
            response = await client.post(path, json=body,
                                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "tap-1"})
            return time.perf_counter() - began, response

        tasks = [asyncio.ensure_future(one(t)) for t in tokens]
        await asyncio.sleep(0.1)  # every task is waiting at the gate
        began = time.perf_counter()
        start.set()
        done = await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return wall, [d[0] for d in done], [d[1] for d in done]


def latency_ms(latencies: list[float]) -> dict[str, float]:
    """p50, p95 and max of `latencies` (seconds), in milliseconds."""
    ordered = sorted(latencies)
    return {"p50_ms": statistics.median(ordered) * 1000, "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
            "max_ms": ordered[-1] * 1000}


def report_checks(kind: str, row: dict[str, Any]) -> bool:
    """Print a run's checks and any unexpected answers; whether all passed."""
    for name, passed in row["checks"].items():
        print(f"{kind}: {'ok  ' if passed else 'FAIL'} {name}")
    if row["other"]:
        print(f"{kind}: FAIL other answers: {row['other']}")
    return all(row["checks"].values()) and not row["other"]


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve_process(sys.argv[2])
