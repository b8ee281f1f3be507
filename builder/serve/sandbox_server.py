"""Running the sandbox gateway where Alipay's SDK can reach it: a loopback address, port 80.

Alipay's Python SDK cannot talk to any other port: `alipay/aop/api/util/WebUtils.py`,
`get_http_connection`, opens `HTTPConnection(host, 80)` (443 for https) whatever the
server_url says, and a server_url with an explicit port crashes it (it adds the int port
to a str). The SDK is the production path under test and is not patched, so the sandbox
listens on port 80 of an address of its own in 127.0.0.0/8 (127.0.0.2 and up; binding
port 80 needs root, or CAP_NET_BIND_SERVICE) and the client's server_url is
`http://127.0.0.N/gateway.do`.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

PORT = 80  # the SDK's port for http://, see the module docstring


def _bind_free_loopback() -> socket.socket:
    """A listening socket on port 80 of the first free 127.0.0.N (N >= 2): an address no
    other sandbox of this or another process holds."""
    for n in range(2, 255):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((f"127.0.0.{n}", PORT))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        # Listening at once: with SO_REUSEADDR, a bound socket that does not listen yet
        # lets another process bind the same address (and its listen then fails).
        sock.listen(128)
        return sock
    raise OSError(errno.EADDRINUSE, "no free 127.0.0.N has port 80 free")


class SandboxServer:
    """`with SandboxServer(app) as server:` serves `app` with uvicorn in a thread on
    127.0.0.N:80; `server.gateway_url` is the server_url for AlipayClient."""

    def __init__(self, app: Starlette) -> None:
        self._socket = _bind_free_loopback()
        self.host = self._socket.getsockname()[0]
        self.gateway_url = f"http://{self.host}/gateway.do"
        # log_config=None (and no log_level or access_log): uvicorn leaves the process's
        # logging configuration alone; its records go wherever the process sends them.
        config = uvicorn.Config(app, lifespan="off", log_config=None, timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"sandbox {self.host}", daemon=True)

    def __enter__(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the sandbox on {self.host}:{PORT} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()
