"""The back end `mpforge dev` runs for its spec, so the preview's buttons run whole flows.

`DevBackend.start(spec_path)` is `mpforge serve --sandbox` for one spec, inside the dev
process: the spec's merchant (builder/serve/merchant.py `load_merchant`), a sandbox
gateway standing in for Alipay (`LocalSandbox`, on 127.0.0.N:80), the back end's app
(`create_app`) on a SQLite file in a temporary folder with a fresh session secret, and
uvicorn serving it in a thread on 127.0.0.1 and a free port, which is also the app's
public URL (the sandbox posts payment notifications there). `stop()` ends all of it and
removes the folder: every dev run starts with an empty database and sandbox.

Nothing here is needed for the preview itself: when the back end cannot run (the serve
extras are not installed, the spec has no app id, port 80 of a loopback address cannot
be bound without root or CAP_NET_BIND_SERVICE), `start` raises `BackendUnavailable`
with the reason, which dev prints and shows, and the preview runs without a back end.
"""

from __future__ import annotations

import json
import secrets
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from .errors import UserError

START_TIMEOUT = 15.0  # seconds for uvicorn to start listening
PAY_TIMEOUT = 20.0  # seconds for the sandbox to pay and hear the back end answer its notification


class BackendUnavailable(Exception):
    """Why the back end does not run (a sentence for the terminal and the preview)."""


class DevBackend:
    """A running back end for one spec: `url` is where it listens, `appid` the app it
    serves; `follow(login)` makes a sandbox user follow the app's life account."""

    def __init__(self, url: str, appid: str, stack: ExitStack, follow: Callable[[str], None],
                 sandbox_url: str) -> None:
        self.url = url
        self.appid = appid
        self.sandbox_url = sandbox_url  # the sandbox gateway's base, e.g. http://127.0.0.2
        self._stack = stack
        self._follow = follow

    @classmethod
    def start(cls, spec_path: Path) -> DevBackend:
        """Start the back end of the spec at `spec_path`; BackendUnavailable if it cannot run."""
        try:
            import uvicorn

            from .serve.app import create_app
            from .serve.local_sandbox import LocalSandbox
            from .serve.merchant import load_merchant
            from .serve.sandbox_state import sandbox_user_id
        except ImportError as exc:
            raise BackendUnavailable(f"the back end needs mpforge's serve extras ({exc.name} is missing): "
                                     "pip install 'mpforge[serve]'") from None
        try:
            merchant = load_merchant(spec_path)
        except UserError as exc:
            raise BackendUnavailable(f"the spec's back end cannot be served: {exc}") from None
        stack = ExitStack()  # what started so far, closed in reverse if a later step fails
        try:
            try:
                sandbox = stack.enter_context(LocalSandbox([merchant]))
            except PermissionError:
                raise BackendUnavailable("the sandbox gateway listens on port 80 of a loopback address (the only "
                                         "port Alipay's SDK reaches), which needs root or CAP_NET_BIND_SERVICE "
                                         "(e.g. sudo setcap cap_net_bind_service=+ep on the Python binary)") from None
            except OSError as exc:
                raise BackendUnavailable(f"the sandbox gateway could not start: {exc}") from None
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpforge-dev-backend-")))
            server = _ThreadedServer(uvicorn)  # its port first: the app's public URL (payment notifications)
            stack.callback(server.stop)
            try:
                app = create_app([merchant], f"sqlite:///{folder / 'dev.sqlite3'}", alipay=sandbox.alipay,
                                 secret=secrets.token_bytes(32), public_url=server.url)
            except UserError as exc:
                raise BackendUnavailable(f"the back end could not start: {exc}") from None
            sandbox.remove_key_files()  # the clients hold the keys now
            server.start(app)
        except BaseException:
            stack.close()
            raise
        state, appid = sandbox.state, merchant.appid

        def follow(login: str) -> None:
            state.set_following(appid, sandbox_user_id(login))

        return cls(server.url, appid, stack, follow, sandbox.server.gateway_url.removesuffix("/gateway.do"))

    def follow(self, login: str) -> None:
        """Sandbox user `login` follows the life account of the app (what Alipay records
        when a user taps 关注 in the lifestyle component)."""
        self._follow(login)

    def pay(self, trade_no: str) -> tuple[int, bytes]:
        """The sandbox buyer pays trade `trade_no` of the app (the sandbox's POST
        /sandbox/pay, which sends the back end Alipay's signed notification): the
        sandbox's status and JSON answer."""
        return self._post_json(f"{self.sandbox_url}/sandbox/pay", {"appId": self.appid, "tradeNo": trade_no})

    def card_apply(self, login: str, template_id: str, mobile: str | None) -> tuple[int, bytes]:
        """Sandbox user `login` submits the claim form of card template `template_id` (what
        Alipay's page, opened by the 会员私域插件, does): the sandbox's POST
        /sandbox/card/apply, which answers the authCode, requestId and templateId the
        plugin's callback carries."""
        body = {"appId": self.appid, "templateId": template_id, "login": login}
        if mobile is not None:
            body["mobile"] = mobile
        return self._post_json(f"{self.sandbox_url}/sandbox/card/apply", body)

    def till_code(self, store: str) -> tuple[int, bytes]:
        """The stamp code the till of `store` shows now (the back end's till page polls
        GET /merchant/{appid}/till/code), read with a staff session when dev's environment
        has MPFORGE_STAFF_TOKEN_<appid>, the till's login."""
        from .serve.replies import ApiError
        from .serve.staff_session import COOKIE, issue, role_token

        try:
            token = role_token(self.appid, "staff")
        except ApiError as too_short:
            token, why = None, str(too_short)
        else:
            why = f"start mpforge dev with MPFORGE_STAFF_TOKEN_{self.appid} set (32 characters or more)"
        if token is None:
            return 503, json.dumps({"error": {"message": f"the till is behind the staff login: {why}"}}).encode()
        cookie = issue(self.appid, "staff", token, datetime.now(timezone.utc))
        request = urllib.request.Request(f"{self.url}/merchant/{self.appid}/till/code?{urlencode({'store': store})}",
                                         headers={"Cookie": f"{COOKIE}={cookie}"})
        return self._answer(request)

    def _post_json(self, url: str, body: dict[str, Any]) -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        return self._answer(request)

    @staticmethod
    def _answer(request: urllib.request.Request) -> tuple[int, bytes]:
        """The status and body of `request`, an HTTP error's too; 502 when nothing answered."""
        try:
            with urllib.request.urlopen(request, timeout=PAY_TIMEOUT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read()
        except OSError as exc:
            return 502, json.dumps({"error": {"message": f"{request.full_url} did not answer: {exc}"}}).encode()

    def stop(self) -> None:
        """Stop uvicorn, then the sandbox; remove the database's folder."""
        self._stack.close()


class _ThreadedServer:
    """uvicorn serving an app in a daemon thread on 127.0.0.1 and a free port, bound
    when made (so `url` is known before the app is); its lifespan runs, so the app's
    storage is disposed when it stops."""

    def __init__(self, uvicorn: Any) -> None:
        self._uvicorn = uvicorn
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any) -> None:
        # log_config=None: uvicorn leaves the process's logging alone (dev prints builds,
        # not requests).
        config = self._uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=2)
        server = self._server = self._uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                                 name="mpforge-dev-backend", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable("the back end did not start (see the terminal for its error)")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()
