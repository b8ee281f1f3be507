"""`mpforge dev`'s routes for the page runtime, without a browser: the setData render and
its limits, scripts as modules, the back-end proxy and the sandbox follow route when no
back end runs, and the event attributes the renderer gives the runtime.

tests/test_e2e_dev_backend.py drives the same routes from Chromium with the back end on.
"""

from __future__ import annotations

import copy
import http.client
import json

import pytest
from helpers import MINIMAL_SPEC, write_project

from builder import devserver
from builder.devserver import DevServer
from builder.preview.renderer import PageRenderer

RUNTIME = {"X-Mpforge-Runtime": "1"}


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """A dev server for a spec without a back end (the routes that need one say so)."""
    root = tmp_path_factory.mktemp("runtime") / "shop"
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["pages"][0]["blocks"].append({"type": "button", "text": "Go", "link": "home"})
    write_project(root, spec)
    server = DevServer(root, port=0, log=lambda text: None)
    server.start()
    yield server
    server.stop()


def call(server: DevServer, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{server.port}", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), data


def render(server: DevServer, data: object, *, path: str = "pages/home/home",
           headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    body = raw if raw is not None else json.dumps(data).encode()
    sent = {**RUNTIME, "Content-Type": "application/json", **(headers or {})}
    status, _, answer = call(server, "POST", f"/__mpforge/render?path={path}", body, sent)
    return status, json.loads(answer)


def home_data(server: DevServer) -> dict:
    app = server.status()["app"]
    from builder.preview.model import read_page_data

    data = read_page_data(app.tree.text("pages/home/home.js"))
    assert data is not None
    return data


# --- the setData render ---------------------------------------------------------------------


def test_render_shows_the_data_posted(dev):
    data = home_data(dev)
    key = next(k for k, v in data.items() if isinstance(v, dict) and "text" in v and v["text"] == "Go")
    data[key]["text"] = "Changed <b>by setData</b>"
    status, answer = render(dev, data)
    assert status == 200
    assert "Changed &lt;b&gt;by setData&lt;/b&gt;" in answer["html"] and "<b>" not in answer["html"]
    assert answer["path"] == "pages/home/home" and answer["version"] == dev.state.version


def test_render_refuses_requests_the_runtime_did_not_send(dev):
    body = json.dumps({}).encode()
    plain = {"Content-Type": "application/json"}
    assert call(dev, "POST", "/__mpforge/render?path=pages/home/home", body, plain)[0] == 403
    for foreign in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        assert render(dev, {}, headers=foreign)[0] == 403
    assert render(dev, {}, headers={"Origin": f"http://127.0.0.1:{dev.port}", "Sec-Fetch-Site": "same-origin"})[0] \
        == 200
    assert call(dev, "POST", "/__mpforge/render?path=pages/home/home", body,
                {**RUNTIME, **plain, "Host": "evil.example"})[0] == 403
    # No CORS: a cross-origin preflight gets nothing to go on.
    status, headers, _ = call(dev, "OPTIONS", "/__mpforge/render", None, {"Origin": "http://evil.example"})
    assert status == 405 and not any(h.lower().startswith("access-control") for h in headers)


def test_render_limits(dev, monkeypatch):
    assert render(dev, {}, headers={"Content-Type": "text/plain"})[0] == 415
    assert render(dev, None, raw=b"{not json")[0] == 400
    assert render(dev, None, raw=b"\xff\xfe")[0] == 400
    assert render(dev, [1, 2])[0] == 400
    deep: object = "x"
    for _ in range(devserver.MAX_RENDER_DEPTH + 1):
        deep = {"a": deep}
    status, answer = render(dev, {"b0": deep})
    assert status == 400 and "nested" in answer["error"]
    assert render(dev, None, raw=b"[" * 100_000 + b"]" * 100_000)[0] == 400  # deeper than json's recursion
    monkeypatch.setattr(devserver, "MAX_RENDER_BYTES", 1000)
    status, answer = render(dev, {"b0": "x" * 2000})
    assert status == 413 and "1000 bytes" in answer["error"]
    assert render(dev, {}, path="pages/nope/nope")[0] == 404
    assert dev.status()["ok"]  # the server goes on


def test_render_without_a_content_length_is_refused(dev):
    conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=10)
    conn.putrequest("POST", "/__mpforge/render?path=pages/home/home", skip_host=True)
    for name, value in {"Host": f"127.0.0.1:{dev.port}", **RUNTIME, "Content-Type": "application/json",
                        "Transfer-Encoding": "chunked"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(b"2\r\n{}\r\n0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()


# --- scripts as modules, the proxy and the follow route without a back end -------------------


def test_scripts_are_served_as_modules(dev):
    status, _, body = call(dev, "GET", "/__mpforge/app")
    scripts = json.loads(body)["runtime"]["scripts"]
    assert {"app.js", "pages/home/home.js", "utils/mpforge.js"} <= set(scripts)
    status, headers, body = call(dev, "GET", "/__mpforge/module?path=pages/home/home.js")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert text.startswith('__mpforgeDefine("pages/home/home.js", function (module, exports, require, my, getApp, '
                           "App, Page, Component, getCurrentPages, requirePlugin) {\n")
    assert "Page({" in text and text.rstrip().endswith("//# sourceURL=mpforge-app:///pages/home/home.js")
    for missing in ("app.json", "pages/nope.js", "../app.js"):
        assert call(dev, "GET", f"/__mpforge/module?path={missing}")[0] == 404


def test_without_a_back_end_the_proxy_and_follow_say_why(dev):
    status, _, body = call(dev, "GET", "/__mpforge/app")
    assert json.loads(body)["runtime"]["backend"] == {
        "base": None, "running": False, "note": "the spec names no back end (backend.base_url)"}
    status, headers, body = call(dev, "POST", "/__mpforge/backend/api/v1/x/session", b"{}",
                                 {**RUNTIME, "Content-Type": "application/json"})
    assert status == 503 and headers["X-Mpforge-Backend"] == "unavailable"
    assert "names no back end" in json.loads(body)["error"]
    assert call(dev, "GET", "/__mpforge/backend/api/v1/x/content")[0] == 403  # not from the runtime
    follow = {**RUNTIME, "Content-Type": "application/json"}
    assert call(dev, "POST", "/__mpforge/sandbox/follow", b'{"login": "bad login!"}', follow)[0] == 400
    assert call(dev, "POST", "/__mpforge/sandbox/follow", b'{"login": "alice"}', follow)[0] == 503
    assert call(dev, "POST", "/__mpforge/sandbox/pay", b'{"tradeNo": "a/b"}', follow)[0] == 400
    assert call(dev, "POST", "/__mpforge/sandbox/pay", b'{"tradeNo": "2026120222001"}', follow)[0] == 503
    assert call(dev, "POST", "/__mpforge/sandbox/pay", b'{"tradeNo": "2026120222001"}',
                {"Content-Type": "application/json"})[0] == 403  # not the runtime


def test_the_shell_loads_the_runtime_and_the_static_preview_does_not(dev, tmp_path):
    status, _, body = call(dev, "GET", "/")
    shell = body.decode()
    assert shell.index("/__mpforge/static/runtime.js") < shell.index("/__mpforge/static/preview.js")
    assert 'id="mpf-user"' in shell
    assert call(dev, "GET", "/__mpforge/static/runtime.js")[0] == 200
    from builder.preview import static_preview_files

    files = static_preview_files(dev.status()["app"].tree)
    assert "runtime.js" not in files and "runtime.js" not in files["index.html"].decode()


# --- what the renderer gives the runtime --------------------------------------------------------


def rendered(source: str, data: dict | None = None, components: dict | None = None) -> str:
    renderer = PageRenderer("pages/home/home", data or {}, lambda path: None, components or {})
    from builder.preview.axml import parse_axml

    return renderer.render(parse_axml(source).children)


def test_event_handlers_and_dataset_become_data_attributes():
    html = rendered('<view onTap="onA" catchLongTap="onB" bindchange="onC" data-coupon-id="{{id}}" '
                    'data-link="{{link}}" data-n="{{3}}"><text>x</text></view>',
                    {"id": "c<1>", "link": {"kind": "page", "url": "/pages/a/a"}})
    assert 'data-mp-on-tap="onA"' in html and 'data-mp-catch-longtap="onB"' in html
    assert 'data-mp-on-change="onC"' in html
    dataset = html.split('data-mp-dataset="')[1].split('"')[0].replace("&quot;", '"')
    assert json.loads(dataset.replace("&lt;", "<").replace("&gt;", ">")) == {
        "couponId": "c<1>", "link": {"kind": "page", "url": "/pages/a/a"}, "n": 3}
    assert "data-mp-link" not in html  # only onTapLink's link is followed without the runtime
    assert "data-mp-link=" in rendered('<view onTap="onTapLink" data-link="{{link}}"/>', {"link": {"kind": "tab"}})


def test_the_coupon_plugin_component_renders_its_content_with_its_params():
    html = rendered('<get-coupon params="{{p}}" onGetCouponSuccess="onGot"><button>立即领取</button></get-coupon>',
                    {"p": [{"activityId": "A1", "outBizNo": "N1"}]},
                    {"get-coupon": "plugin://couponPlugin/get-coupon"})
    assert 'data-mp-component="get-coupon"' in html and 'data-mp-on-getcouponsuccess="onGot"' in html
    assert "立即领取" in html and "mp-placeholder" not in html
    params = html.split('data-mp-params="')[1].split('"')[0].replace("&quot;", '"')
    assert json.loads(params) == [{"activityId": "A1", "outBizNo": "N1"}]


# --- the back end dev runs ---------------------------------------------------------------------


def test_the_back_end_restarts_when_the_coupons_change_and_stops_with_dev(tmp_path):
    from helpers import copy_sample, save_spec

    spec = copy_sample("harbour-coffee", tmp_path / "project")
    lines: list[str] = []
    server = DevServer(spec, tmp_path / "out", port=0, log=lines.append)
    server.start()
    try:
        first = server.current_backend()
        assert first is not None and server.status()["backend"]["running"]
        assert any(line.startswith("back end started for https://api.harbourcoffee.example.com") for line in lines)
        status, _, body = call(server, "GET", "/__mpforge/backend/api/v1/2021004123456789/content", None, RUNTIME)
        assert status == 200 and json.loads(body)["coupons"][0]["title"] == "新人立减 5 元"
        # An edit of the pages keeps it; a coupon's edit restarts it with the new coupons.
        text = spec.read_text("utf-8")
        save_spec(spec, text.replace("本季推荐", "本季推荐 2"))
        server.rebuild("test")
        assert server.current_backend() is first
        save_spec(spec, text.replace("title: 新人立减 5 元", "title: 新人立减 6 元"))
        server.rebuild("test")
        second = server.current_backend()
        assert second is not None and second is not first
        assert any(line.startswith("back end restarted") for line in lines)
        status, _, body = call(server, "GET", "/__mpforge/backend/api/v1/2021004123456789/content", None, RUNTIME)
        assert json.loads(body)["coupons"][0]["title"] == "新人立减 6 元"
        with pytest.raises(OSError):  # the first one is gone
            http.client.HTTPConnection(first.url.removeprefix("http://").split(":")[0],
                                       int(first.url.rsplit(":", 1)[1]), timeout=2).request("GET", "/")
    finally:
        server.stop()
    assert server.current_backend() is None
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", int(second.url.rsplit(":", 1)[1]), timeout=2).request("GET", "/")


def test_a_spec_without_an_app_id_runs_the_preview_without_a_back_end(tmp_path):
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["backend"] = {"base_url": "https://api.harbourcoffee.example.com"}
    spec["app"].pop("appid", None)
    # utils/backend.js logs users in, so the app needs a privacy policy page.
    spec["pages"].append({"id": "privacy", "title": "隐私政策", "blocks": [{"type": "text", "text": "隐私政策"}]})
    root = write_project(tmp_path / "shop", spec)
    lines: list[str] = []
    server = DevServer(root, tmp_path / "out", port=0, log=lines.append)
    server.start()
    try:
        assert server.current_backend() is None
        assert server.status()["backend"] == {"base": "https://api.harbourcoffee.example.com", "running": False,
                                              "note": "the back end needs the app's Alipay app id (app.appid)"}
        assert "note: the preview runs without a back end: the back end needs the app's Alipay app id (app.appid)" \
            in lines
        assert server.status()["ok"]
    finally:
        server.stop()


def test_without_permission_for_the_sandbox_dev_says_why_and_previews(tmp_path, monkeypatch):
    """Binding port 80 of 127.0.0.N needs root or CAP_NET_BIND_SERVICE; without it the
    preview still runs, and the terminal and the runtime panel say what is missing."""
    from helpers import copy_sample

    from builder.serve import local_sandbox

    def refuse(self, merchants, **options):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(local_sandbox.LocalSandbox, "__init__", refuse)
    spec = copy_sample("harbour-coffee", tmp_path / "project")
    lines: list[str] = []
    server = DevServer(spec, tmp_path / "out", port=0, log=lines.append)
    server.start()
    try:
        note = server.status()["backend"]["note"]
        assert server.current_backend() is None and server.status()["ok"]
        assert "needs root or CAP_NET_BIND_SERVICE" in note
        assert f"note: the preview runs without a back end: {note}" in lines
        status, headers, body = call(server, "GET", "/__mpforge/backend/api/v1/2021004123456789/content", None,
                                     RUNTIME)
        assert status == 503 and "CAP_NET_BIND_SERVICE" in json.loads(body)["error"]
    finally:
        server.stop()


def test_without_the_serve_extras_the_back_end_names_the_install(tmp_path, monkeypatch):
    import sys

    from helpers import copy_sample

    from builder.dev_backend import BackendUnavailable, DevBackend

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    spec = copy_sample("harbour-coffee", tmp_path / "project")
    with pytest.raises(BackendUnavailable, match=r"serve extras \(uvicorn is missing\): pip install 'mpforge\[serve\]'"):
        DevBackend.start(spec)
