"""`mpforge dev` without a browser: routes, safety, the watch -> rebuild loop, SSE."""

from __future__ import annotations

import copy
import http.client
import json
import os
import socket
import time
from pathlib import Path

import pytest
import yaml
from helpers import MINIMAL_SPEC, tree_hashes, write_project
from helpers import wait_until as wait_for

from builder import devserver
from builder.devserver import DevServer
from builder.errors import UserError


def spec_with(text: str) -> dict:
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["pages"][0]["blocks"][0]["text"] = text
    return spec


def save(root: Path, spec: dict | str) -> None:
    """An editor's atomic save: write a temp file, rename it over the spec."""
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)
    temp = root / ".mpforge.yaml.swp"
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, root / "mpforge.yaml")


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "shop"
    write_project(root, spec_with("Hello"))
    return root


@pytest.fixture
def server(project):
    dev = DevServer(project, port=0, log=lambda text: None)
    dev.start()
    yield dev
    dev.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that only send requests."""
    root = tmp_path_factory.mktemp("shared") / "shop"
    write_project(root, spec_with("Hello"))
    dev = DevServer(root, port=0, log=lambda text: None)
    dev.start()
    yield dev
    dev.stop()


def request(server: DevServer, path: str, host: str | None = "default", method: str = "GET"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    if host == "default":
        host = f"127.0.0.1:{server.port}"
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def home_text(server: DevServer) -> str:
    status, _, body = request(server, "/__mpforge/page?path=pages/home/home")
    assert status == 200
    return json.loads(body)["html"]


def test_serves_the_shell_models_and_build_files(server, project):
    status, headers, body = request(server, "/")
    assert status == 200 and b"mpf-phone" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = request(server, "/__mpforge/static/preview.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, _, body = request(server, "/__mpforge/app")
    status_json = json.loads(body)
    assert status_json["ok"] is True and status_json["version"] == 1
    assert [p["path"] for p in status_json["app"]["pages"]] == ["pages/home/home", "pages/about/about"]
    assert "Hello" in home_text(server)
    status, headers, body = request(server, "/app/assets/banner.png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == (project / "assets" / "banner.png").read_bytes()
    assert request(server, "/__mpforge/page?path=pages/nope/nope")[0] == 404
    # The Alipay output is written too.
    assert "Hello" in (project / "dist" / "pages" / "home" / "home.js").read_text("utf-8")


TRAVERSALS = [
    "/app/../mpforge.yaml", "/app/%2e%2e/mpforge.yaml", "/app/%2E%2E/%2E%2E/etc/passwd",
    "/app/..%2fmpforge.yaml", "/app/%252e%252e/mpforge.yaml", "/app/assets/..\\..\\mpforge.yaml",
    "/app/assets%5c..%5c..%5cmpforge.yaml", "/app/./assets/banner.png", "/app//etc/passwd",
    "/app/%00", "/app/assets/banner.png%00.txt", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/__mpforge/static/../../devserver.py", "/__mpforge/static/%2e%2e%2fdevserver.py",
    "/__mpforge/static/components.css.bak", "/mpforge.yaml", "/dist/app.json", "/app/.mpforge-manifest.json",
    "/app/%ff%fe", "http://127.0.0.1/app/app.json", "/app/assets/../../../../../../etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_and_unknown_paths_are_404(shared, path):
    status, _, body = request(shared, path)
    assert status == 404, body
    assert b"spec_version" not in body and b"root:" not in body


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8750", "127.0.0.1.evil.example", "localhost.evil",
                                  "", None])
def test_foreign_host_headers_are_refused(shared, host):
    for path in ("/", "/__mpforge/app", "/__mpforge/events", "/app/assets/banner.png"):
        status, _, body = request(shared, path, host=host)
        assert status == 403, (path, host)
        assert b"Hello" not in body


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
def test_local_host_headers_are_served(shared, host):
    assert request(shared, "/", host=host.format(port=shared.port))[0] == 200


def test_other_methods_are_refused(shared):
    assert request(shared, "/", method="POST")[0] == 405
    assert request(shared, "/__mpforge/app", method="DELETE")[0] == 405
    assert request(shared, "/", method="HEAD")[0] == 200


def test_save_rebuilds_and_writing_the_output_triggers_nothing(server, project):
    time.sleep(0.4)
    assert server.state.version == 1  # writing dist/ did not trigger a rebuild
    save(project, spec_with("Changed by an atomic save"))
    wait_for(lambda: "Changed by an atomic save" in home_text(server), what="rebuild")
    assert "Changed by an atomic save" in (project / "dist" / "pages" / "home" / "home.js").read_text("utf-8")
    # A plain in-place write works too.
    (project / "mpforge.yaml").write_text(yaml.safe_dump(spec_with("In place"), allow_unicode=True), "utf-8")
    wait_for(lambda: "In place" in home_text(server), what="rebuild")


def test_a_burst_of_saves_is_one_or_two_builds_ending_on_the_last(server, project):
    before = server.state.version
    for i in range(30):
        save(project, spec_with(f"Burst {i}"))
    wait_for(lambda: "Burst 29" in home_text(server), what="last save")
    time.sleep(0.3)
    assert server.state.version - before <= 3


def test_failed_build_keeps_the_last_good_one_and_recovers(server, project):
    save(project, "spec_version: 1\napp:\n  name: [unclosed\npages: []\n")
    wait_for(lambda: not server.state.ok, what="failure")
    status = json.loads(request(server, "/__mpforge/app")[2])
    assert status["ok"] is False and status["goodVersion"] == 1
    problem = status["problems"][0]
    assert problem["file"] == "mpforge.yaml" and problem["line"] == 4 and "YAML" in problem["message"]
    assert "Hello" in home_text(server)  # still the last good build
    save(project, spec_with("Fixed"))
    wait_for(lambda: server.state.ok and "Fixed" in home_text(server), what="recovery")
    assert json.loads(request(server, "/__mpforge/app")[2])["problems"] == []


def test_a_crash_inside_a_rebuild_never_stops_the_server(server, project, monkeypatch):
    real_build = devserver.api.build

    def crash(*args, **kwargs):
        raise RuntimeError("boom in a plugin")

    monkeypatch.setattr(devserver.api, "build", crash)
    save(project, spec_with("After crash"))
    wait_for(lambda: not server.state.ok, what="crash reported")
    assert "internal error: RuntimeError: boom in a plugin" in server.state.problems[0]["message"]
    assert request(server, "/")[0] == 200
    monkeypatch.setattr(devserver.api, "build", real_build)
    save(project, spec_with("After crash, fixed"))
    wait_for(lambda: server.state.ok and "After crash, fixed" in home_text(server), what="recovery")


def test_deleting_and_restoring_the_spec(server, project):
    text = (project / "mpforge.yaml").read_text("utf-8")
    (project / "mpforge.yaml").unlink()
    wait_for(lambda: not server.state.ok, what="failure")
    (project / "mpforge.yaml").write_text(text.replace("Hello", "Restored"), "utf-8")
    wait_for(lambda: server.state.ok and "Restored" in home_text(server), what="restore")


def test_template_overrides_assets_and_local_plugins_are_watched(server, project):
    override = project / "templates" / "blocks" / "heading.axml"
    override.parent.mkdir(parents=True)
    override.write_text('<view class="custom-heading"><text>{{[[ key ]].text}}</text></view>\n', "utf-8")
    wait_for(lambda: "custom-heading" in home_text(server), what="template override")

    old_url = json.loads(request(server, "/__mpforge/app")[2])["app"]["tabBar"]["items"][0]["icon"]
    (project / "assets" / "tab" / "home.png").write_bytes((project / "assets" / "banner.png").read_bytes())
    wait_for(lambda: json.loads(request(server, "/__mpforge/app")[2])["app"]["tabBar"]["items"][0]["icon"] != old_url,
             what="asset change")

    plugin = project / "local_block.py"
    plugin.write_text("PLUGIN_NAME = 'local-block'\n", "utf-8")
    spec = spec_with("With plugin")
    spec["plugins"] = ["./local_block.py"]
    save(project, spec)
    wait_for(lambda: server.state.ok and "With plugin" in home_text(server), what="plugin spec")
    version = server.state.version
    plugin.write_text("raise RuntimeError('plugin edited into a broken state')\n", "utf-8")
    wait_for(lambda: server.state.version > version and not server.state.ok, what="plugin edit")
    assert "plugin edited into a broken state" in json.dumps(server.state.problems)


def read_event(stream) -> dict:
    lines = []
    while True:
        line = stream.readline().decode("utf-8")
        if line == "\n" and lines:
            break
        if line.startswith("data: "):
            lines.append(line[6:].strip())
        if not line:
            raise AssertionError("stream closed")
    return json.loads("".join(lines))


def test_server_sent_events_announce_every_build(server, project):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/__mpforge/events")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    first = read_event(response)
    assert first["ok"] is True and first["version"] == 1
    save(project, spec_with("Via SSE"))
    event = read_event(response)
    assert event == {**event, "ok": True, "version": 2, "since": 1, "changed": ["pages/home/home"],
                     "appChanged": False}
    save(project, "pages: [\n")
    event = read_event(response)
    assert event["ok"] is False and event["problems"][0]["line"] == 2
    conn.close()


def test_output_inside_the_watched_project_is_refused(project):
    with pytest.raises(UserError, match="contains the project"):
        DevServer(project, out_dir=project, port=0)
    with pytest.raises(UserError, match="inside"):
        DevServer(project, out_dir=project / "templates" / "out", port=0)


@pytest.mark.parametrize("where", ["assets", "assets/out", "media/out", "/"])
def test_output_inside_the_assets_folder_or_at_the_root_is_refused_before_anything_is_written(tmp_path, where):
    """`-o proj/assets` used to start, and write the app into the folder the next build copies."""
    root = tmp_path / "shop"
    spec = spec_with("Hello")
    write_project(root, spec)
    if where.startswith("media"):
        (root / "assets").rename(root / "media")
        spec["assets"] = "media"
        save(root, spec)
    before = tree_hashes(root)
    with pytest.raises(UserError, match="inside|contains the project"):
        DevServer(root, out_dir=root / where, port=0)
    assert tree_hashes(root) == before


def test_cli_dev_refuses_an_output_folder_inside_the_assets_folder(project):
    import subprocess
    import sys

    before = tree_hashes(project)
    try:  # a server that starts runs until stopped: the timeout ends it, and the test fails
        result = subprocess.run([sys.executable, "-m", "builder", "dev", str(project), "-o", str(project / "assets"),
                                 "--port", "0"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"mpforge dev started: {exc.stdout!r}") from None
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the output folder {project / 'assets'} is inside {project / 'assets'}" in result.stderr
    assert tree_hashes(project) == before


def test_a_busy_port_is_a_clear_error(project):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(UserError, match="cannot serve"):
            DevServer(project, port=sock.getsockname()[1])


def test_a_first_build_that_fails_still_serves_and_recovers(tmp_path):
    root = tmp_path / "shop"
    write_project(root, spec_with("Hello"))
    good = (root / "mpforge.yaml").read_text("utf-8")
    (root / "mpforge.yaml").write_text("spec_version: 1\npages: [\n", "utf-8")
    dev = DevServer(root, port=0, log=lambda text: None)
    dev.start()
    try:
        status = json.loads(request(dev, "/__mpforge/app")[2])
        assert status["ok"] is False and status["app"] is None and status["problems"][0]["line"] == 3
        assert request(dev, "/")[0] == 200
        assert request(dev, "/__mpforge/page?path=pages/home/home")[0] == 404
        save(root, good)
        wait_for(lambda: dev.state.ok, what="recovery")
        assert "Hello" in home_text(dev)
    finally:
        dev.stop()


def test_cli_dev_without_a_spec_is_a_user_error(tmp_path):
    from click.testing import CliRunner

    from builder.cli import main

    result = CliRunner().invoke(main, ["dev", str(tmp_path), "--port", "0"])
    assert result.exit_code == 1
    assert "no spec found" in result.output


def test_cli_dev_warns_about_another_host_and_stops_cleanly_on_sigterm(project):
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "builder", "dev", str(project), "--host", "127.0.0.2",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        while not any("mpforge dev: serving" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        output = "".join(lines)
        assert "warning: serving on 127.0.0.2" in output
        port = int(re.search(r"http://127\.0\.0\.2:(\d+)/", output).group(1))
        conn = http.client.HTTPConnection("127.0.0.2", port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200  # Host: 127.0.0.2:port, the bound host
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.2", port, timeout=5)
        conn.request("GET", "/", headers={"Host": "rebind.example"})
        assert conn.getresponse().status == 403
        conn.close()
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0
    assert "mpforge dev: stopped" in rest


def test_saves_during_a_slow_build_make_exactly_one_more_build(server, project, monkeypatch):
    real_build = devserver.api.build
    started = []

    def slow_build(*args, **kwargs):
        started.append(time.monotonic())
        time.sleep(0.6)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(devserver.api, "build", slow_build)
    before = server.state.version
    save(project, spec_with("First"))
    wait_for(lambda: started, what="the slow build to start")
    for i in range(5):  # all while that build runs
        save(project, spec_with(f"During {i}"))
        time.sleep(0.02)
    wait_for(lambda: "During 4" in home_text(server), what="the last save")
    time.sleep(0.8)
    assert server.state.version - before == 2 and len(started) == 2


def test_a_bug_in_the_preview_is_a_500_not_a_dead_server(server, monkeypatch):
    def broken(self, path):
        raise ValueError("renderer bug")

    monkeypatch.setattr(devserver.PreviewApp, "page_model", broken)
    status, _, body = request(server, "/__mpforge/page?path=pages/home/home")
    assert status == 500 and b"renderer bug" in body
    monkeypatch.undo()
    assert request(server, "/__mpforge/page?path=pages/home/home")[0] == 200


def test_cli_dev_on_an_ascii_terminal_logs_its_builds(project):
    """The build log's '✓' and '—' on an ASCII terminal. (click.echo, which prints the log,
    writes UTF-8 to a terminal that claims ASCII, taking that for a misconfiguration.)"""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.Popen([sys.executable, "-m", "builder", "dev", str(project), "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines: list[bytes] = []
        deadline = time.monotonic() + 60
        while not any(b"mpforge dev: serving" in line for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, b"".join(lines).decode("ascii", "replace")
            lines.append(line)
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=15)[0]
    output = b"".join(lines) + rest
    assert proc.returncode == 0, output
    assert b"build 1 in" in output and b"internal error" not in output


def test_two_hundred_parallel_requests_are_all_answered(shared):
    """The listen backlog was 5 (the stdlib default): a burst of connections, like a page
    with many images or a test harness, overflowed it and requests timed out. Bounded:
    200 requests to 127.0.0.1, each with a 5 s timeout, the whole burst under 30 s."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(index: int) -> int:
        path = "/__mpforge/app" if index % 2 else "/app/assets/banner.png"
        try:
            return request(shared, path)[0]
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=200) as clients:
        statuses = list(clients.map(fetch, range(200)))
    assert statuses == [200] * 200, [s for s in statuses if s != 200][:5]
    assert time.monotonic() - started < 30


def test_event_streams_are_bounded_and_never_starve_other_requests(server):
    """Each live-reload stream holds a thread while open: past the limit a stream is
    refused (503), and with every stream open other requests are still answered."""
    streams = []
    try:
        for _ in range(devserver.MAX_EVENT_STREAMS):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", "/__mpforge/events")
            response = conn.getresponse()
            assert response.status == 200
            assert read_event(response)["ok"] is True
            streams.append(conn)
        assert request(server, "/__mpforge/events")[0] == 503

        from concurrent.futures import ThreadPoolExecutor

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=50) as clients:
            statuses = list(clients.map(lambda _: request(server, "/__mpforge/app")[0], range(100)))
        assert statuses == [200] * 100 and time.monotonic() - started < 30
    finally:
        for conn in streams:
            conn.close()


def test_stopping_a_server_that_never_served_returns_at_once(project):
    """Ctrl-C or SIGTERM during the first build stops a server whose loop never ran:
    shutdown() used to wait for it forever, and the watcher could not be joined."""
    dev = DevServer(project, port=0, log=lambda text: None)
    started = time.monotonic()
    dev.stop()
    assert time.monotonic() - started < 5


def test_a_hand_edit_to_the_output_stops_rebuilds_and_is_kept(server, project):
    edited = server.out_dir / "pages/home/home.axml"
    edited.write_text("<view>my edit</view>\n", encoding="utf-8")
    save(project, spec_with("After the edit"))
    wait_for(lambda: not server.state.ok, what="the refused rebuild")
    assert any("pages/home/home.axml" in (p["file"] or "") + p["message"] for p in server.state.problems)
    assert edited.read_text(encoding="utf-8") == "<view>my edit</view>\n"
    edited.unlink()  # the way out: drop the edit (or move it into a template override)
    save(project, spec_with("After the edit, again"))
    wait_for(lambda: server.state.ok and "After the edit, again" in home_text(server), what="recovery")
