"""The generated mini-program's JavaScript against the real back end, end to end:
services/coupon.js and utils/backend.js run in Node on a `my` whose `request` reaches a
live `mpforge serve` app (uvicorn), whose Alipay is the sandbox gateway (the official
SDK, real signatures). Nothing between the app's code and the sandbox is faked.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from serve_support import APPID, coupon, write_spec
from sqlalchemy import select

from builder.api import build
from builder.serve.app import create_app
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import Faults, sandbox_user_id
from builder.serve.storage import EVENTS

BASE_URL = "https://api.example.com"  # write_spec's back end; the harness sends it to the live server
SECRET = b"s" * 32

# Runs the built app's JS with a `my` backed by fetch (Node 20) and a page object. STEPS
# (argv[3]) run one after another, each when every request of the one before it settled.
HARNESS = r"""
const path = require('path');
const [out, live, stepsJson, login] = process.argv.slice(1);
const steps = JSON.parse(stepsJson);
const storage = {};
const log = { toasts: [], requests: [], pages: {} };
let pending = 0;
global.getApp = () => ({ globalData: { chInfo: 'ch-test' } });
global.my = {
  getStorageSync: ({ key }) => ({ data: storage[key] === undefined ? null : JSON.parse(storage[key]) }),
  setStorageSync: ({ key, data }) => { storage[key] = JSON.stringify(data); },
  removeStorageSync: ({ key }) => { delete storage[key]; },
  showLoading: () => {}, hideLoading: () => {},
  showToast: (t) => log.toasts.push(t.content),
  getAuthCode: (o) => { pending += 1; setTimeout(() => { o.success({ authCode: 'sandbox-user-' + login }); pending -= 1; }, 0); },
  openMerchantVoucherList: (o) => log.toasts.push('card pack ' + o.partnerId),
  request: (o) => {
    pending += 1;
    const url = o.url.replace(BASE_URL_JSON, live);
    const headers = Object.assign({}, o.headers);
    log.requests.push({ method: o.method, path: new URL(url).pathname, key: headers['Idempotency-Key'] || null });
    const body = o.method === 'GET' ? undefined : JSON.stringify(o.data || {});
    fetch(url, { method: o.method, headers, body }).then(async (res) => {
      const text = await res.text();
      const data = text ? JSON.parse(text) : '';
      const hdrs = Object.fromEntries(res.headers.entries());
      if (res.status >= 200 && res.status < 300) o.success({ status: res.status, data, headers: hdrs });
      else o.fail({ error: 19, errorMessage: 'http status error', status: res.status, data, headers: hdrs });
    }, () => o.fail({ error: 12, errorMessage: 'network' })).finally(() => { pending -= 1; });
  },
};
const coupon = require(path.join(out, 'services/coupon.js'));
const backend = require(path.join(out, 'utils/backend.js'));
const page = {
  route: 'pages/coupons/coupons',
  data: { b0: { coupons: [], mine: false } , mine: { coupons: [], mine: true } },
  setData(update) { for (const [k, v] of Object.entries(update)) { const [key, field] = k.split('.'); this.data[key][field] = v; } },
};
const idle = () => new Promise((resolve) => { const tick = () => (pending ? setTimeout(tick, 5) : resolve()); setTimeout(tick, 5); });
(async () => {
  for (const step of steps) {
    if (step.do === 'show') page.data.b0.coupons = step.coupons.map((id) => ({ id: id, title: id }));
    if (step.do === 'refresh') coupon.refresh(page, ['b0', 'mine']);
    if (step.do === 'claim') coupon.claim(page, ['b0', 'mine'], step.id);
    if (step.do === 'double-tap') { coupon.claim(page, ['b0', 'mine'], step.id); coupon.claim(page, ['b0', 'mine'], step.id); }
    if (step.do === 'plugin-success') coupon.pluginSucceeded(page, ['b0', 'mine'], step.id);
    if (step.do === 'record') backend.record(step.kind, step.fields);
    if (step.do === 'flush') backend.flush();
    if (step.do === 'flush-twice') { backend.flush(); backend.flush(); }
    if (step.do === 'login') backend.authorized({ path: '/me/claims' }, () => {});
    await idle();
    if (step.do === 'refresh') log.pages[step.as || 'last'] = JSON.parse(JSON.stringify(page.data));
  }
  log.storage = storage;
  process.stdout.write(JSON.stringify(log));
})();
""".replace("BASE_URL_JSON", json.dumps(BASE_URL))


class Live:
    """A running back end (its URL, sandbox and app) and the built mini-program."""

    def __init__(self, url: str, sandbox: LocalSandbox, app: Any, out: Path) -> None:
        self.url, self.sandbox, self.app, self.out = url, sandbox, app, out

    def run(self, steps: list[dict[str, Any]], login: str = "7") -> dict[str, Any]:
        result = subprocess.run(["node", "-e", HARNESS, str(self.out), self.url, json.dumps(steps), login],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        log: dict[str, Any] = json.loads(result.stdout)
        return log

    def vouchers(self, coupon_id: str) -> list[Any]:
        return self.sandbox.state.issued(f"act-{coupon_id}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    stops: list[Callable[[], None]] = []

    def start(*coupons: dict[str, Any], sections: dict[str, Any] | None = None) -> Live:
        spec = write_spec(tmp_path / "shop", coupons)
        if sections:  # more of the spec: a catalogue, its pages
            data = yaml.safe_load(spec.read_text("utf-8"))
            data["pages"].extend(sections.pop("pages", []))
            spec.write_text(yaml.safe_dump({**data, **sections}, allow_unicode=True, sort_keys=False), "utf-8")
        out = tmp_path / "out"
        build(spec, out)
        merchant = load_merchant(spec)
        try:
            sandbox = LocalSandbox([merchant], timeout=2.0)
        except PermissionError:
            pytest.fail("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
        sandbox.__enter__()
        stops.append(lambda: sandbox.__exit__(None, None, None))
        app = create_app([merchant], f"sqlite:///{tmp_path / 'serve.sqlite3'}", alipay=sandbox.alipay, secret=SECRET)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the back end did not start"
            time.sleep(0.02)

        def stop() -> None:
            server.should_exit = True
            thread.join(10)

        stops.append(stop)
        return Live(f"http://127.0.0.1:{port}", sandbox, app, out)

    yield start
    for stop in reversed(stops):
        stop()


def test_claim_issues_one_voucher_and_the_button_says_so(live: Callable[..., Live]) -> None:
    served = live(coupon("welcome", stock=5))
    log = served.run([{"do": "show", "coupons": ["welcome"]}, {"do": "refresh", "as": "before"},
                      {"do": "claim", "id": "welcome"}, {"do": "refresh", "as": "after"},
                      {"do": "claim", "id": "welcome"}])
    assert [c["state_text"] for c in log["pages"]["before"]["b0"]["coupons"]] == ["立即领取"]
    assert [c["state_text"] for c in log["pages"]["after"]["b0"]["coupons"]] == ["已领取"]
    assert log["toasts"] == ["领取成功"]  # the second tap on 已领取 sends nothing
    claims = [r for r in log["requests"] if r["path"].endswith("/claims") and r["method"] == "POST"]
    assert len(claims) == 1 and claims[0]["key"]
    [voucher] = served.vouchers("welcome")
    assert voucher.user_id == sandbox_user_id("7")
    # My coupons: the voucher the back end holds, not a device list.
    [mine] = log["pages"]["after"]["mine"]["coupons"]
    assert (mine["coupon"], mine["state"], mine["title"]) == ("welcome", "claimed", "welcome 5 元")
    assert mine["expires_text"].startswith("有效期至 ")


def test_a_claim_alipay_did_not_answer_is_retried_with_the_same_key(live: Callable[..., Live]) -> None:
    served = live(coupon("welcome", stock=5))
    signed_in = served.run([{"do": "login"}])
    served.sandbox.state.faults = Faults(busy=True)  # 20000: the outcome is unknown, retried
    first = _rerun(served, signed_in["storage"], [{"do": "show", "coupons": ["welcome"]},
                                                  {"do": "claim", "id": "welcome"}])
    assert first["toasts"] == ["正在发券，请稍后再点一次"]
    assert served.vouchers("welcome") == []
    served.sandbox.state.faults = Faults()
    # The same device (its storage) taps again: the attempt's key is sent again.
    [key] = [r["key"] for r in first["requests"] if r["method"] == "POST" and r["path"].endswith("/claims")]
    steps = [{"do": "show", "coupons": ["welcome"]}, {"do": "claim", "id": "welcome"}]
    again = _rerun(served, first["storage"], steps)
    assert again["toasts"] == ["领取成功"]
    assert [r["key"] for r in again["requests"] if r["method"] == "POST" and r["path"].endswith("/claims")] == [key]
    assert len(served.vouchers("welcome")) == 1


def test_the_plugin_route_hands_the_reservation_to_alipays_coupon_plugin(live: Callable[..., Live]) -> None:
    served = live(coupon("gift", stock=5, claim_route="plugin"))
    log = served.run([{"do": "show", "coupons": ["gift"]}, {"do": "claim", "id": "gift"},
                      {"do": "refresh", "as": "reserved"}, {"do": "plugin-success", "id": "gift"},
                      {"do": "refresh", "as": "done"}])
    [reserved] = log["pages"]["reserved"]["b0"]["coupons"]
    assert (reserved["state"], reserved["state_text"]) == ("reserved", "放入卡包")
    [params] = reserved["plugin_params"]
    assert params["activityId"] == "act-gift" and len(params["outBizNo"]) == 32
    assert served.vouchers("gift") == []  # Alipay's plugin issues it, with that out_biz_no
    assert log["toasts"] == ["点击「放入卡包」完成领取", "已放入支付宝卡包"]
    [done] = log["pages"]["done"]["b0"]["coupons"]
    assert done["state"] == "claimed" and done["plugin_params"] == []


def test_events_reach_the_back_end_in_a_batch(live: Callable[..., Live]) -> None:
    served = live(coupon("welcome"))
    log = served.run([{"do": "record", "kind": "open", "fields": {"scene": 1011, "channel": "poster", "table": ""}},
                      {"do": "record", "kind": "visit", "fields": {"entryPoint": "table-1", "store": "main"}},
                      {"do": "flush"}])
    [post] = [r for r in log["requests"] if r["path"].endswith("/events")]
    assert post["method"] == "POST"
    assert json.loads(log["storage"]["mpforge.events"]) == []
    with served.app.state.api.storage.engine.connect() as conn:
        rows = conn.execute(select(EVENTS).where(EVENTS.c.appid == APPID).order_by(EVENTS.c.id)).mappings().all()
    assert [(e["kind"], e["scene"], e["channel"], e["entry_point"], e["store"]) for e in rows] == [
        ("open", "1011", "poster", None, None), ("visit", None, None, "table-1", "main")]


def test_a_double_tap_claims_once_and_flushes_never_overlap(live: Callable[..., Live]) -> None:
    served = live(coupon("welcome", stock=9, per_user_limit=3))
    log = served.run([{"do": "show", "coupons": ["welcome"]}, {"do": "double-tap", "id": "welcome"},
                      {"do": "record", "kind": "open", "fields": {"channel": "c" * 100, "chInfo": "x" * 300}},
                      {"do": "record", "kind": "visit", "fields": {"store": "main"}}, {"do": "flush-twice"}])
    assert len([r for r in log["requests"] if r["method"] == "POST" and r["path"].endswith("/claims")]) == 1
    assert len(served.vouchers("welcome")) == 1 and log["toasts"] == ["领取成功"]
    assert len([r for r in log["requests"] if r["path"].endswith("/events")]) == 1
    assert json.loads(log["storage"]["mpforge.events"]) == []  # what was sent, and only that, is gone
    with served.app.state.api.storage.engine.connect() as conn:
        rows = conn.execute(select(EVENTS).where(EVENTS.c.appid == APPID).order_by(EVENTS.c.id)).mappings().all()
    # Over-long values (a hand-edited query) are cut to what the back end takes, not refused.
    assert [(e["kind"], len(e["channel"] or ""), len(e["ch_info"] or "")) for e in rows] == [
        ("claim", 0, 0), ("open", 64, 128), ("visit", 0, 0)]  # the claim's own event first


def _rerun(served: Live, storage: dict[str, str], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps on a device that already holds `storage`."""
    preload = [{"do": "noop"}]
    script = HARNESS.replace("const storage = {};", f"const storage = {json.dumps(storage)};")
    result = subprocess.run(["node", "-e", script, str(served.out), served.url, json.dumps(preload + steps), "7"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    log: dict[str, Any] = json.loads(result.stdout)
    return log


def test_a_follow_reward_is_issued_only_after_alipay_confirms_the_follow(live: Callable[..., Live]) -> None:
    served = live(coupon("fans", stock=5, audience="followers"))
    before = served.run([{"do": "claim", "id": "fans"}])
    assert before["toasts"] == ["关注生活号后才能领取"] and served.vouchers("fans") == []
    served.sandbox.state.set_following(APPID, sandbox_user_id("7"))
    after = served.run([{"do": "claim", "id": "fans"}])
    assert after["toasts"] == ["领取成功"] and len(served.vouchers("fans")) == 1


PAGE_HARNESS = r"""
// Loads a built page with a `my` whose request reaches the live back end; shows it.
const path = require('path');
const [pageFile, live] = process.argv.slice(1);
let pending = 0;
global.getApp = () => ({});
const storage = {};
global.my = {
  getStorageSync: ({ key }) => ({ data: storage[key] }), setStorageSync: ({ key, data }) => { storage[key] = data; },
  setNavigationBar: () => {},
  request: (o) => {
    pending += 1;
    fetch(o.url.replace(BASE_URL_JSON, live), { headers: o.headers }).then(async (res) => {
      const data = await res.json();
      if (res.status === 200) o.success({ status: 200, data, headers: Object.fromEntries(res.headers.entries()) });
      else o.fail({ error: 19, status: res.status, data });
    }, () => o.fail({ error: 12 })).finally(() => { pending -= 1; });
  },
};
let page;
global.Page = (o) => { page = o; };
require(pageFile);
page.setData = function (update) { for (const [k, v] of Object.entries(update)) { const [key, field] = k.split('.'); this.data[key][field] = v; } };
page.onLoad({ item: 'latte' });
page.onShow();
const idle = () => new Promise((resolve) => { const tick = () => (pending ? setTimeout(tick, 5) : resolve()); setTimeout(tick, 5); });
idle().then(() => process.stdout.write(JSON.stringify(page.data)));
""".replace("BASE_URL_JSON", json.dumps(BASE_URL))


def test_a_published_price_reaches_the_product_pages_without_a_new_build(live: Callable[..., Live]) -> None:
    catalogue = {"detail_page": "product", "categories": [{"id": "coffee", "name": "咖啡"}],
                 "products": [{"id": "latte", "name": "拿铁", "category": "coffee", "price": 28},
                              {"id": "mocha", "name": "摩卡", "category": "coffee", "price": 30}]}
    product_page = {"id": "product", "title": "商品", "blocks": [{"type": "product-detail"},
                                                                {"type": "product-list", "category": "coffee"}]}
    served = live(coupon("welcome"), sections={"catalogue": catalogue, "pages": [product_page]})

    def shown() -> dict[str, Any]:
        result = subprocess.run(["node", "-e", PAGE_HARNESS, str(served.out / "pages/product/product.js"), served.url],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    before = shown()
    assert (before["b0"]["current"]["name"], before["b0"]["current"]["price"]) == ("拿铁", "¥28.00")
    storage = served.app.state.api.storage
    document = {"name": "Test Shop", "coupons": [], "products": [
        {"id": "latte", "name": "燕麦拿铁", "price": "26.00", "originalPrice": "28.00"},
        {"id": "mocha", "name": "摩卡", "price": "30.00", "soldOut": True}]}
    storage.add_content_version(APPID, json.dumps(document, ensure_ascii=False))
    after = shown()
    current = after["b0"]["current"]
    assert (current["name"], current["price"], current["original_price"]) == ("燕麦拿铁", "¥26.00", "¥28.00")
    assert [(i["name"], i["price"], i["sold_out"]) for i in after["b1"]["items"]] == [
        ("燕麦拿铁", "¥26.00", False), ("摩卡", "¥30.00", True)]
