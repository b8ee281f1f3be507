"""`mpforge dev`: build, serve a live preview, rebuild on every save.

One process, three kinds of threads:

- the watcher (builder/watch.py) calls `DevServer.rebuild` once per burst of changes;
  rebuilds run one at a time through `api.build`, which also writes the Alipay
  output, so the IDE open on the output folder refreshes too;
- the HTTP server (stdlib HTTPServer; requests answered by a bounded pool of threads,
  with a listen backlog for bursts) serves the preview shell, the JSON models of the last
  good build, the files of that build (from memory, not from disk) and a Server-Sent
  Events stream;
- each browser holds one SSE connection and gets one `build` event per rebuild: on
  success it re-renders the page it shows (keeping its scroll position), on failure it
  shows the located problems over the last good build. A stream holds its thread while
  open, so streams are limited apart from the threads for other requests.

Safety: binds 127.0.0.1 unless told otherwise; answers only requests whose Host header
names the bound host or localhost (DNS rebinding); serves nothing but the routes below
(paths with `..`, `.`, backslashes or NUL, encoded or not, are 404); a rebuild that
raises anything at all becomes an error overlay, never a stopped server.

    /                       the preview shell
    /__mpforge/static/NAME  preview.js, runtime.js, preview.css
    /__mpforge/app          {version, ok, problems, app, runtime}: build status, the app
                            model, the build's scripts and the back end's status
    /__mpforge/page?path=P  the rendered preview of page P
    /__mpforge/module?path=P  the build's script P wrapped as a CommonJS module for the runtime
    /__mpforge/events       Server-Sent Events: one `build` event per rebuild
    /app/PATH               a file of the last good build (images, ...)
  from the runtime only (header X-Mpforge-Runtime: 1, same origin; see `_from_runtime`):
    POST /__mpforge/render?path=P    page P's AXML rendered with the JSON data posted (setData)
    *    /__mpforge/backend/PATH     proxied to the back end dev runs (builder/dev_backend.py)
    POST /__mpforge/sandbox/follow   a sandbox user follows the app's life account
    POST /__mpforge/sandbox/pay      my.tradePay's cashier: the sandbox buyer pays a trade
    POST /__mpforge/sandbox/card-apply  the member card's claim form: a sandbox user submits it
    POST /__mpforge/sandbox/till-code   my.scan at the till: the stamp code the till shows now

The page scripts run in the browser on a small emulation of the mini-program's `my`
(static/runtime.js, docs/preview-runtime.md); the AXML is still rendered here. When the
spec has a back end (`backend.base_url`) and an app id, dev runs it with a sandbox
gateway for Alipay (`--no-backend` turns that off), restarts it when the spec changes
anywhere but in its pages, and stops it with dev.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import mimetypes
import queue
import re
import signal
import socket
import sys
import threading
import time
import traceback
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import api, pipeline
from .dev_backend import BackendUnavailable, DevBackend
from .errors import Problem, UserError
from .options import PluginOptions
from .preview.model import STATIC_DIR, PreviewApp
from .preview.shell import CSP, shell_html
from .session import BuildSession
from .spec_file import find_spec
from .watch import ProjectWatcher, WatchPlan

DEFAULT_PORT = 8750
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
STATIC_FILES = {"preview.js": "text/javascript; charset=utf-8", "runtime.js": "text/javascript; charset=utf-8",
                "preview.css": "text/css; charset=utf-8"}
HEARTBEAT = 15.0
LISTEN_BACKLOG = 128  # connections the kernel holds until accepted; the stdlib's 5 overflowed in bursts
REQUEST_THREADS = 16  # for everything but event streams: each is answered from memory, quickly
MAX_EVENT_STREAMS = 32  # browsers with live reload at once; each holds a thread while open
CLIENT_TIMEOUT = 30.0  # seconds a connection may stall reading or writing before it is dropped
SIGNAL_POLL = 0.25  # seconds between the main thread's checks for Ctrl-C and SIGTERM
MAX_RENDER_BYTES = 2 * 1024 * 1024  # the page data one setData render may post
MAX_RENDER_DEPTH = 64  # nesting of that data (objects and lists)
MAX_PROXY_BYTES = 1024 * 1024  # a request body proxied to the back end, and its answer (x8)
BACKEND_TIMEOUT = 35.0  # seconds; longer than my.request's default 30 s, so the runtime times out first
# Headers a mini-program request may carry to the back end, and those of its answers the page sees.
PROXY_REQUEST_HEADERS = ("content-type", "authorization", "idempotency-key", "if-none-match", "accept")
PROXY_RESPONSE_HEADERS = ("etag", "retry-after", "www-authenticate", "location")
SANDBOX_LOGIN = re.compile(r"[A-Za-z0-9_-]{1,64}")
TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,64}")
STORE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The card form the runtime posts, as one value: "<login>|<template id>|<mobile digits or empty>".
CARD_FORM = re.compile(r"[A-Za-z0-9_-]{1,64}\|[A-Za-z0-9_-]{1,64}\|[0-9]{0,20}")


@dataclass
class BuildState:
    """The outcome of the latest build and the last good one."""

    version: int = 0  # of the latest build attempt
    ok: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)
    app: PreviewApp | None = None  # last good build's preview
    seconds: float = 0.0


class Broadcaster:
    """Server-Sent Events fan-out: one queue per connected browser, at most `limit`."""

    def __init__(self, limit: int = MAX_EVENT_STREAMS) -> None:
        self._lock = threading.Lock()
        self._clients: set[queue.Queue[str | None]] = set()
        self._limit = limit
        self.closed = False

    def subscribe(self) -> queue.Queue[str | None] | None:
        """A queue for one more browser; None when `limit` browsers are connected."""
        client: queue.Queue[str | None] = queue.Queue(maxsize=64)
        with self._lock:
            if len(self._clients) >= self._limit:
                return None
            self._clients.add(client)
        return client

    def unsubscribe(self, client: queue.Queue[str | None]) -> None:
        with self._lock:
            self._clients.discard(client)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        message = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
        with self._lock:
            for client in list(self._clients):
                try:
                    client.put_nowait(message)
                except queue.Full:  # a browser that stopped reading: let it reconnect
                    self._clients.discard(client)
                    _offer(client, None)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for client in self._clients:
                _offer(client, None)
            self._clients.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)


def _offer(client: queue.Queue[str | None], item: str | None) -> None:
    try:
        client.put_nowait(item)
    except queue.Full:
        try:
            client.get_nowait()
            client.put_nowait(item)
        except (queue.Empty, queue.Full):
            pass


class DevServer:
    def __init__(self, target: str | Path | None, out_dir: str | Path | None = None,
                 options: PluginOptions | None = None, *,
                 host: str = "127.0.0.1", port: int | None = None,
                 log: Callable[[str], None] | None = None, backend: bool = True):
        self.spec_path = find_spec(target).resolve()
        self.root = self.spec_path.parent
        self.out_dir = Path(out_dir).resolve() if out_dir else api.default_output(self.spec_path)
        self.options = options or PluginOptions()
        self.session = BuildSession()  # what each rebuild reuses from the one before
        self.host = host
        self.log = log or (lambda text: print(text, flush=True))
        self.state = BuildState()
        self.lock = threading.Lock()
        self.events = Broadcaster()
        self._build_lock = threading.Lock()
        # Before the first build writes anything: the folders watched from the start, and
        # the assets folder the spec names (a build copies it, so it cannot hold the output).
        self._check_output_folder(*self._default_plan().trees, *self._named_assets_folder())
        self.httpd = _bind(host, port)
        self.port = self.httpd.server_address[1]
        self.httpd.dev = self
        self.watcher = ProjectWatcher(self._on_change)
        self._plan = self._default_plan()
        self._thread: threading.Thread | None = None  # serving, once `start` got that far
        self.backend_enabled = backend
        self.backend: DevBackend | None = None  # running, under self.lock
        self.backend_status: dict[str, Any] = {"base": None, "running": False,
                                               "note": "" if backend else "turned off (--no-backend)"}
        self._backend_key: str | None = None  # what the running back end was started for
        self.appid: str | None = None  # the app id of the last good build (the runtime's storage namespace)
        self.stores: list[dict[str, Any]] = []  # the last good build's stores: where my.getLocation may be

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    def _check_output_folder(self, *watched: Path) -> None:
        out = self.out_dir
        if self.root == out or self.root.is_relative_to(out):
            raise UserError([Problem(f"the output folder {out} contains the project; mpforge dev watches the "
                                     "project, so writing there would rebuild forever",
                                     hint="choose another folder with -o")])
        for folder in watched:
            if out.is_relative_to(folder.resolve()):
                raise UserError([Problem(f"the output folder {out} is inside {folder}, which mpforge dev watches",
                                         hint="choose another folder with -o")])

    def _named_assets_folder(self) -> list[Path]:
        """The assets folder the spec names, as the build will resolve it; none when the
        spec cannot be read yet (its first build reports why, and rebuilds check again)."""
        from .load import load_spec

        try:
            data = load_spec(self.spec_path, self.session.load).data
        except UserError:
            return []
        folder = data.get("assets") if isinstance(data, dict) else None
        return [self.root / folder] if isinstance(folder, str) else []

    # --- building -----------------------------------------------------------------------

    def _default_plan(self) -> WatchPlan:
        return WatchPlan(files={self.spec_path}, trees={self.root / "templates", self.root / "assets"},
                         ignore={self.out_dir})

    def _plan_for(self, prepared: pipeline.Prepared) -> WatchPlan:
        """Watch exactly the project's part of what the build read (its inputs)."""
        plan = WatchPlan(files={self.spec_path}, trees={self.root / "templates"}, ignore={self.out_dir})
        for item in prepared.inputs:
            if item.local:
                (plan.trees if item.tree else plan.files).add(item.path)
        assets = prepared.spec.assets_dir
        plan.trees.add(assets.resolve() if assets else self.root / "assets")
        if assets:
            self._check_output_folder(assets.resolve())
        return plan

    def _on_change(self, paths: set[Path]) -> None:
        shown = ", ".join(sorted(_short(p, self.root) for p in paths)[:3]) + (" …" if len(paths) > 3 else "")
        self.rebuild(f"changed: {shown}")

    def rebuild(self, reason: str = "") -> BuildState:
        """Build once; whatever happens, record it and tell the browsers."""
        with self._build_lock:
            started = time.perf_counter()
            problems: list[Problem] = []
            preview = None
            backend_change: tuple[str, str | None, str | None] | None = None
            summary = ""
            try:
                # Every save builds (force), but a generated file edited by hand stops the
                # build with its name, as `mpforge build` does: the edit is never lost.
                outcome = api.build(self.spec_path, self.out_dir, self.options, force=True,
                                    session=self.session, overwrite_edits=False)
                prepared, result = outcome.prepared, outcome.result
                assert prepared is not None  # force: never skipped
                with self.lock:
                    previous = self.state.app
                    version = self.state.version + 1
                preview = PreviewApp(prepared.tree, version=version, previous=previous)
                summary = f"{len(result.written)} written, {len(result.removed)} removed"
                problems = list(prepared.warnings)
                self._plan = self._plan_for(prepared)
                backend_change = self._backend_change(prepared)
                with self.lock:
                    self.appid = prepared.spec.model.app.appid
                    self.stores = [{"id": st.id, "name": st.name, "lat": st.lat, "lng": st.lng}
                                   for st in prepared.spec.model.merchant.stores]
            except UserError as exc:
                problems = list(exc.problems)
            except BaseException as exc:  # a bug in mpforge or a plugin: report, keep serving
                if isinstance(exc, KeyboardInterrupt):
                    raise
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self.log("internal error during rebuild:\n" + "".join(traceback.format_exception(exc)).rstrip())
                problems = [Problem(f"internal error: {detail}",
                                    hint="the server keeps the last good build; see the terminal for the traceback")]
            seconds = time.perf_counter() - started
            with self.lock:
                self.state.version += 1
                version = self.state.version
                previous = self.state.app
                self.state.seconds = seconds
                errors = [p for p in problems if p.severity == "error"]
                self.state.ok = preview is not None
                self.state.problems = [p.to_dict() for p in (errors if preview is None else problems)]
                if preview is not None:
                    preview.version = version
                    self.state.app = preview
            self.watcher.set_plan(self._plan)
            ms = f"{seconds * 1000:.0f} ms"
            if preview is not None:
                app_changed, changed = preview.changes_since(previous)
                self.events.publish("build", {
                    "version": version, "ok": True, "since": previous.version if previous else None,
                    "appChanged": app_changed, "changed": changed, "seconds": round(seconds, 4)})
                self.log(f"✓ build {version} in {ms} ({summary})" + (f" — {reason}" if reason else ""))
                for problem in problems:
                    self.log(f"  warning: {problem}")
            else:
                self.events.publish("build", {"version": version, "ok": False,
                                              "problems": self.state.problems, "seconds": round(seconds, 4)})
                self.log(f"✗ build {version} failed in {ms}: {len(errors)} problem{'s' if len(errors) != 1 else ''}"
                         + (f" — {reason}" if reason else ""))
                for problem in errors:
                    self.log(f"  error: {problem}")
            if backend_change is not None:
                self._restart_backend(*backend_change)
            return self.state

    # --- the back end -------------------------------------------------------------------

    def _backend_change(self, prepared: pipeline.Prepared) -> tuple[str, str | None, str | None] | None:
        """(key, base URL, app id) when the back end must (re)start for this build: the
        spec but its pages differs from what it runs with; else None. The back end serves
        what serve/merchant.py reads from the spec (app id and name, coupons, catalogue,
        ...), which grows; an edit of the pages, the most frequent, keeps it running."""
        spec = prepared.spec
        if not self.backend_enabled:  # the runtime still needs the base URL, to say why requests fail
            with self.lock:
                self.backend_status["base"] = spec.backend_url
            return None
        appid = spec.model.app.appid
        key = json.dumps(spec.model.model_dump(mode="json", exclude={"pages"}), sort_keys=True, default=str)
        return None if key == self._backend_key else (key, spec.backend_url, appid)

    def _restart_backend(self, key: str, base: str | None, appid: str | None) -> None:
        """Stop the running back end, if any, and start one for the spec as it is now."""
        restarting = self._backend_key is not None
        self._backend_key = key
        with self.lock:
            old, self.backend = self.backend, None
            self.backend_status = {"base": base, "running": False, "note": "starting"}
        if old is not None:
            old.stop()
        backend, note = None, ""
        if base is None:
            note = "the spec names no back end (backend.base_url)"
        elif appid is None:
            note = "the back end needs the app's Alipay app id (app.appid)"
        else:
            try:
                backend = DevBackend.start(self.spec_path)
            except BackendUnavailable as exc:
                note = str(exc)
        with self.lock:
            self.backend = backend
            self.backend_status = {"base": base, "running": backend is not None, "note": note}
        if backend is not None:
            self.log(f"back end {'restarted' if restarting else 'started'} for {base}: {backend.url}, with a sandbox "
                     f"gateway standing in for Alipay (its database and sandbox start empty)")
        elif base is not None:
            self.log(f"note: the preview runs without a back end: {note}")

    def stop_backend(self) -> None:
        with self.lock:
            backend, self.backend = self.backend, None
            self.backend_status = {**self.backend_status, "running": False, "note": "stopped"}
        if backend is not None:
            backend.stop()

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        """First build, then watch and serve in background threads."""
        self.rebuild()
        self.watcher.start(self._plan)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="mpforge-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop what `start` started; it may have been interrupted in the first build."""
        self.events.close()
        if self._thread is not None:
            self.watcher.stop()
            self.httpd.shutdown()  # waits for serve_forever to return: only once it runs
        self.httpd.server_close()
        self.stop_backend()

    def status(self) -> dict[str, Any]:
        with self.lock:
            app = self.state.app
            return {"version": self.state.version, "ok": self.state.ok, "problems": self.state.problems,
                    "goodVersion": app.version if app else None, "app": app,
                    "backend": dict(self.backend_status)}

    def current_backend(self) -> DevBackend | None:
        with self.lock:
            return self.backend


def _depth(data: Any) -> int:
    """How deeply objects and lists nest in `data` (without recursion: the depth is
    what is being checked)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_RENDER_DEPTH:
                stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _short(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class _Server(HTTPServer):
    """Accepts on one thread and answers on a bounded pool: a burst of requests queues
    instead of starting a thread each. The pool has a thread for every event stream
    allowed plus REQUEST_THREADS, so open streams never starve other requests."""

    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    dev: DevServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        # First: a failed bind calls server_close. The pool starts no thread until used.
        self._pool = ThreadPoolExecutor(max_workers=REQUEST_THREADS + MAX_EVENT_STREAMS,
                                        thread_name_prefix="mpforge-http")
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._answer, request, client_address)

    def _answer(self, request: Any, client_address: Any) -> None:
        # What socketserver.ThreadingMixIn does in each thread it starts.
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _bind(host: str, port: int | None) -> _Server:
    candidates = [port] if port is not None else list(range(DEFAULT_PORT, DEFAULT_PORT + 20))
    last: OSError | None = None
    for candidate in candidates:
        try:
            server_class: type[_Server] = _Server
            if ":" in host:
                server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
            return server_class((host, candidate), _Handler)
        except OSError as exc:
            last = exc
    where = f"port {port}" if port is not None else f"ports {candidates[0]}-{candidates[-1]}"
    raise UserError([Problem(f"cannot serve on {host} {where}: {last.strerror if last else 'unavailable'}",
                             hint="pick another with --port N (0 picks any free port)")])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "mpforge-dev"
    sys_version = ""
    timeout = CLIENT_TIMEOUT  # a client that stalls gives its thread back

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the terminal shows builds, not requests

    # --- checks -----------------------------------------------------------------------

    def _host_allowed(self) -> bool:
        value = (self.headers.get("Host") or "").strip().lower()
        if not value:
            return False
        if value.startswith("["):
            name = value[1:value.find("]")] if "]" in value else ""
        else:
            name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        bound = self.server.dev.host.lower()
        if name in LOCAL_NAMES or name == bound:
            return True
        # Bound to every interface: a raw IP address is fine (DNS rebinding needs a name).
        return bound in ("0.0.0.0", "::") and _is_ip(name)

    def _route(self) -> tuple[list[str], dict[str, list[str]]] | None:
        """The decoded path segments and query, or None when the path is not acceptable."""
        if not self.path.startswith("/") or self.path.startswith("//"):
            return None
        parts = urlsplit(self.path)
        try:
            path = unquote(parts.path, errors="strict")
        except UnicodeDecodeError:
            return None
        if "\\" in path or "\x00" in path or "%" in path:
            return None  # backslashes, NUL, double encoding: no file of a build has them
        segments = path.split("/")[1:]
        if any(s in (".", "..") for s in segments) or any(s == "" for s in segments[:-1]):
            return None
        return segments, parse_qs(parts.query)

    # --- responses ----------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, *, cache: str = "no-store",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str) -> None:
        self._send(status, (text + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(self._get, "forbidden: unexpected Host header (open the address mpforge dev printed)")

    def _other(self) -> None:
        """POST, PUT, PATCH, DELETE: only the runtime's routes take them."""
        self._dispatch(self._post, "forbidden: unexpected Host header")

    def _dispatch(self, answer: Callable[[DevServer, list[str], dict[str, list[str]]], None], forbidden: str) -> None:
        """What every method shares: the Host check, the route, and a bug in the preview
        answered and logged rather than stopping the server."""
        if not self._host_allowed():
            self._text(403, forbidden)
            return
        route = self._route()
        if route is None:
            self._text(404, "not found")
            return
        segments, query = route
        dev = self.server.dev
        try:
            answer(dev, segments, query)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bug in the preview: answer, log, keep serving
            dev.log("internal error in the preview:\n" + "".join(traceback.format_exception(exc)).rstrip())
            try:
                self._text(500, f"internal error in mpforge's preview: {type(exc).__name__}: {exc}")
            except OSError:
                pass

    def _get(self, dev: DevServer, segments: list[str], query: dict[str, list[str]]) -> None:
        if segments == [""]:
            self._shell(dev)
        elif segments[:2] == ["__mpforge", "static"] and len(segments) == 3 and segments[2] in STATIC_FILES:
            self._send(200, (STATIC_DIR / segments[2]).read_bytes(), STATIC_FILES[segments[2]],
                       cache="no-cache")
        elif segments == ["__mpforge", "app"]:
            status = dev.status()
            app = status.pop("app")
            status["app"] = app.app_model() if app else None
            status["runtime"] = {"scripts": app.scripts() if app else {}, "backend": status.pop("backend"),
                                 "appid": dev.appid, "proxy": "/__mpforge/backend", "stores": dev.stores}
            self._json(status)
        elif segments == ["__mpforge", "page"]:
            self._page(dev, (query.get("path") or [""])[0])
        elif segments == ["__mpforge", "module"]:
            self._module(dev, (query.get("path") or [""])[0])
        elif segments[:2] == ["__mpforge", "backend"]:
            self._backend(dev)
        elif segments == ["__mpforge", "events"]:
            self._events(dev)
        elif segments[0] == "app" and len(segments) > 1:
            self._app_file(dev, "/".join(segments[1:]))
        else:
            self._text(404, "not found")

    def _post(self, dev: DevServer, segments: list[str], query: dict[str, list[str]]) -> None:
        if segments[:2] == ["__mpforge", "backend"]:
            self._backend(dev)
        elif self.command != "POST":
            self._text(405, "method not allowed")
        elif segments == ["__mpforge", "render"]:
            self._render(dev, (query.get("path") or [""])[0])
        elif segments == ["__mpforge", "sandbox", "follow"]:
            self._follow(dev)
        elif segments == ["__mpforge", "sandbox", "pay"]:
            self._pay(dev)
        elif segments == ["__mpforge", "sandbox", "card-apply"]:
            self._card_apply(dev)
        elif segments == ["__mpforge", "sandbox", "till-code"]:
            self._till_code(dev)
        else:
            self._text(405, "method not allowed")

    do_POST = do_PUT = do_DELETE = do_PATCH = _other  # noqa: N815

    def do_OPTIONS(self) -> None:  # noqa: N802
        # No CORS: a cross-origin preflight for the runtime's routes fails here.
        if not self._host_allowed():
            self._text(403, "forbidden: unexpected Host header")
            return
        self._text(405, "method not allowed")

    # --- the runtime's routes -------------------------------------------------------------

    def _from_runtime(self) -> bool:
        """A request the preview's own runtime sent: its custom header (which another site
        cannot send without a CORS preflight, and none is answered) and, where the browser
        says, the same origin. The Host header was checked before."""
        if self.headers.get("X-Mpforge-Runtime") != "1":
            return False
        if self.headers.get("Sec-Fetch-Site") not in (None, "same-origin"):
            return False
        origin = self.headers.get("Origin")
        return origin is None or origin == f"http://{self.headers.get('Host', '')}"

    def _refuse_foreign(self) -> bool:
        if self._from_runtime():
            return False
        self.close_connection = True
        self._json({"error": "only the preview's runtime may call this (same origin, X-Mpforge-Runtime: 1)"}, 403)
        return True

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, at most `limit` bytes; None after answering 411 or 413."""
        declared = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or (declared is None and self.command in ("POST", "PUT", "PATCH")):
            self.close_connection = True
            self._json({"error": "send the body with a Content-Length"}, 411)
            return None
        length = int(declared) if declared and declared.isdigit() else 0
        if length > limit:
            self.close_connection = True
            self._json({"error": f"the body may have at most {limit} bytes"}, 413)
            return None
        return self.rfile.read(length) if length else b""

    def _read_json(self, limit: int) -> Any:
        """The JSON object posted; None after answering an error."""
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            self.close_connection = True
            self._json({"error": "send the data as application/json"}, 415)
            return None
        body = self._read_body(limit)
        if body is None:
            return None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self._json({"error": "the body is not JSON"}, 400)
            return None
        if not isinstance(data, dict):
            self._json({"error": "the body must be a JSON object"}, 400)
            return None
        if _depth(data) > MAX_RENDER_DEPTH:
            self._json({"error": f"the data is nested more than {MAX_RENDER_DEPTH} levels deep"}, 400)
            return None
        return data

    def _render(self, dev: DevServer, path: str) -> None:
        """setData: the page's AXML rendered with the page's data as the runtime holds it."""
        if self._refuse_foreign():
            return
        data = self._read_json(MAX_RENDER_BYTES)
        if data is None:
            return
        app = dev.status()["app"]
        if app is None:
            self._json({"error": "no successful build yet"}, 503)
            return
        result = app.render_with_data(path, data)
        if result is None:
            self._json({"error": f"no page {path}"}, 404)
        else:
            self._json({**result, "version": app.version})

    def _module(self, dev: DevServer, path: str) -> None:
        """A script of the build as a CommonJS module: the runtime's `__mpforgeDefine` gets
        its path and a function of (module, exports, require, my, getApp, App, Page,
        Component, getCurrentPages, requirePlugin) around the file's text. Served as a script of this
        origin, so the shell's Content-Security-Policy needs no 'unsafe-eval'."""
        app = dev.status()["app"]
        if app is None or not path.endswith(".js") or path not in app.tree:
            self._text(404, "not found")
            return
        source = app.tree.text(path)
        body = (f"__mpforgeDefine({json.dumps(path)}, function (module, exports, require, my, getApp, App, Page, "
                f"Component, getCurrentPages, requirePlugin) {{\n{source}\n}});\n//# sourceURL=mpforge-app:///{path}\n")
        self._send(200, body.encode("utf-8"), "text/javascript; charset=utf-8", cache="no-cache")

    def _backend(self, dev: DevServer) -> None:
        """my.request to the spec's back end: passed on to the one dev runs, answered as it
        answered. The runtime tells its own failures (no back end, unreachable) by the
        X-Mpforge-Backend header."""
        if self._refuse_foreign():
            return
        backend = dev.current_backend()
        if backend is None:
            note = dev.status()["backend"]["note"] or "not running"
            self.close_connection = True
            self._send(503, json.dumps({"error": f"mpforge dev runs no back end: {note}"}).encode(),
                       "application/json; charset=utf-8", extra={"X-Mpforge-Backend": "unavailable"})
            return
        body = self._read_body(MAX_PROXY_BYTES)
        if body is None:
            return
        target = urlsplit(self.path)
        path = target.path.removeprefix("/__mpforge/backend") or "/"
        headers = {name: value for name in PROXY_REQUEST_HEADERS if (value := self.headers.get(name)) is not None}
        address = urlsplit(backend.url)
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=BACKEND_TIMEOUT)
        try:
            connection.request(self.command, path + (f"?{target.query}" if target.query else ""),
                               body=body if self.command not in ("GET", "HEAD") else None, headers=headers)
            response = connection.getresponse()
            answer = response.read(8 * MAX_PROXY_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            self._send(502, json.dumps({"error": f"the back end did not answer: {exc}"}).encode(),
                       "application/json; charset=utf-8", extra={"X-Mpforge-Backend": "unreachable"})
            return
        finally:
            connection.close()
        if len(answer) > 8 * MAX_PROXY_BYTES:
            self._send(502, b'{"error": "the back end\'s answer is too large for the preview"}',
                       "application/json; charset=utf-8", extra={"X-Mpforge-Backend": "unreachable"})
            return
        extra = {name.title(): value for name in PROXY_RESPONSE_HEADERS if (value := response.getheader(name))}
        self._send(response.status, answer, response.getheader("Content-Type") or "application/octet-stream",
                   cache=response.getheader("Cache-Control") or "no-store", extra=extra)

    def _sandbox_request(self, dev: DevServer, key: str, pattern: re.Pattern[str],
                         expected: str) -> tuple[DevBackend, str] | None:
        """The running back end and the runtime's `{key: value}` for a sandbox route, or
        None once the refusal is sent: not the runtime (403), `value` not matching
        `pattern` (400, saying `expected`), no back end (503, saying why)."""
        if self._refuse_foreign():
            return None
        data = self._read_json(4096)
        if data is None:
            return None
        value = data.get(key)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self._json({"error": f"{key}: {expected}"}, 400)
            return None
        backend = dev.current_backend()
        if backend is None:
            self._json({"error": f"mpforge dev runs no back end: {dev.status()['backend']['note']}"}, 503)
            return None
        return backend, value

    def _follow(self, dev: DevServer) -> None:
        """The lifestyle component's 关注: the sandbox records that the user follows."""
        found = self._sandbox_request(dev, "login", SANDBOX_LOGIN, "1 to 64 letters, digits, - or _")
        if found is not None:
            backend, login = found
            backend.follow(login)
            self._json({"following": True, "login": login, "appid": backend.appid})

    def _pay(self, dev: DevServer) -> None:
        """my.tradePay's cashier: the sandbox buyer pays the trade `tradeNo`, and the
        sandbox sends the back end its signed notification (as Alipay would)."""
        found = self._sandbox_request(dev, "tradeNo", TRADE_NO,
                                      "alipay.trade.create's trade_no (1 to 64 letters and digits)")
        if found is not None:
            backend, trade_no = found
            status, answer = backend.pay(trade_no)
            self._send(status, answer, "application/json; charset=utf-8")

    def _card_apply(self, dev: DevServer) -> None:
        """The 会员私域插件's claim page: sandbox user `login` submits the form of card
        template `templateId` (with `mobile`, when the form asks it), and the sandbox answers
        the auth code and request id the plugin's callback carries."""
        found = self._sandbox_request(dev, "form", CARD_FORM, "login|templateId|mobile: a sandbox login, the "
                                                              "template id from the claim link, digits or nothing")
        if found is not None:
            backend, form = found
            login, template_id, mobile = form.split("|")
            status, answer = backend.card_apply(login, template_id, mobile or None)
            self._send(status, answer, "application/json; charset=utf-8")

    def _till_code(self, dev: DevServer) -> None:
        """my.scan pointed at the till: the stamp code the till of store `store` shows now."""
        found = self._sandbox_request(dev, "store", STORE_ID, "a store id of the spec (merchant.stores)")
        if found is not None:
            backend, store = found
            status, answer = backend.till_code(store)
            self._send(status, answer, "application/json; charset=utf-8")

    def _shell(self, dev: DevServer) -> None:
        app = dev.status()["app"]
        name = app.app_model()["name"] if app else dev.spec_path.parent.name
        body = shell_html(name=name, asset_base="/__mpforge/static/", mode="live", runtime=True).encode("utf-8")
        self._send(200, body, "text/html; charset=utf-8", extra={"Content-Security-Policy": CSP})

    def _page(self, dev: DevServer, path: str) -> None:
        app = dev.status()["app"]
        model = app.page_model(path) if app else None
        if model is None:
            self._json({"error": f"no page {path}"}, 404)
        else:
            self._json(model)

    def _app_file(self, dev: DevServer, path: str) -> None:
        app = dev.status()["app"]
        if app is None or path not in app.tree:
            self._text(404, "not found")
            return
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/json", "application/javascript", "image/svg+xml"):
            kind += "; charset=utf-8" if not kind.startswith("image/") else ""
        extra = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox"}
        self._send(200, app.tree[path], kind, cache="no-cache", extra=extra)

    def _events(self, dev: DevServer) -> None:
        client = dev.events.subscribe()
        if client is None:
            self._text(503, f"too many live previews open: at most {MAX_EVENT_STREAMS} update live; "
                            "close some preview tabs and reload")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command == "HEAD":
                return
            status = dev.status()
            first = {"version": status["version"], "ok": status["ok"], "problems": status["problems"],
                     "since": None, "appChanged": True, "changed": []}
            if status["ok"] and status["app"] is not None:
                first["version"] = status["app"].version
            self.wfile.write(f"retry: 1000\nevent: build\ndata: {json.dumps(first, ensure_ascii=False)}\n\n"
                             .encode())
            self.wfile.flush()
            while not dev.events.closed:
                try:
                    message = client.get(timeout=HEARTBEAT)
                except queue.Empty:
                    message = ": ping\n\n"
                if message is None:
                    break
                self.wfile.write(message.encode("utf-8"))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            dev.events.unsubscribe(client)
            self.close_connection = True


def run_dev_server(target: str | None, out_dir: str | None, options: PluginOptions, *,
                   host: str | None = None, port: int | None = None, open_browser: bool = False,
                   log: Callable[[str], None] | None = None, backend: bool = True) -> None:
    """`mpforge dev`: run until Ctrl-C (or SIGTERM)."""
    log = log or (lambda text: print(text, flush=True))
    if host and host not in ("127.0.0.1", "localhost"):
        log(f"warning: serving on {host}: anyone who can reach this address can see the preview. "
            "Requests must still name the host in their Host header.")
    server = DevServer(target, out_dir, options, host=host or "127.0.0.1", port=port, log=log, backend=backend)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Before serving: a supervisor may stop the server as soon as it answers.
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        server.start()
        log(f"mpforge dev: serving {server.url} — output in {server.out_dir}; "
            f"watching {_short(server.spec_path, Path.cwd())}"
            f" and its assets, templates and local plugins. Ctrl-C stops.")
        if open_browser:
            webbrowser.open(server.url)
        # Short sleeps: a signal the kernel hands to another thread only runs its Python
        # handler once the main thread runs again, which a long sleep would put off.
        while True:
            time.sleep(SIGNAL_POLL)
    except KeyboardInterrupt:
        log("mpforge dev: stopped")
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
