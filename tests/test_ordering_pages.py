"""The ordering plugin's pages: the spec's `ordering.pages` and the rules on table
stickers leading to the menu (located errors), the generated files, and the pages' own
JavaScript run in Node on an emulated `my` against a live `mpforge serve` and the sandbox
gateway: a table sticker sets store and table, options price the cart, 去支付 creates the
order and my.tradePay (the sandbox's buyer paying) pays it, the order's page says 已支付,
a product sold out meanwhile is refused in words, and my orders lists the order. Last,
the restaurant sample ordered and paid in `mpforge dev`'s preview, in Chromium.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import DevProcess, copy_sample, shown_text, wait_until, write_project
from serve_support import APPID, SECRET, LiveServer, unavailable
from sqlalchemy import text
from test_ordering import shop_spec

from builder.api import build
from builder.errors import UserError
from builder.pipeline import prepare
from builder.serve.app import create_app
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import load_merchant
from plugins.ordering import orders
from plugins.ordering.pricing import CHINA

BASE_URL = "https://api.example.com"  # shop_spec's back end; the harness sends it to the live server
STICKER = {"id": "table-a3", "name": "A3", "kind": "table-sticker", "description": "A3 桌", "page": "menu",
           "query": "table=A3", "channel": "table", "store": "east"}


def pages_spec(**ordering: Any) -> dict[str, Any]:
    """A shop open every hour (the flows run at any time of day) with a table sticker."""
    spec = shop_spec(hours=[], delivery=None, **ordering)
    spec["promotion"] = {"entry_points": [copy.deepcopy(STICKER)]}
    return spec


# --- the spec ----------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s["promotion"]["entry_points"][0].update(store=None, query="store=west&table=A3"),
     "promotion.entry_points[0].query: the menu cannot order at store 'west'"),
    (lambda s: s["promotion"]["entry_points"][0].update(query="table=A%203"),
     "promotion.entry_points[0].query: table 'A%203' is not 1 to 32 letters"),
    (lambda s: s["ordering"].update(pages={"confirm": {"id": "menu", "title": "确认"}}),
     "ordering.pages.confirm.id: page id 'menu' is used by two ordering pages"),
    (lambda s: s["ordering"].update(pages={"orders": {"id": "orders", "title": ""}}), "ordering.pages.orders.title"),
    (lambda s: s["ordering"].update(pages={"menu": {"id": "home", "title": "点单"}}), "home"),
])
def test_page_mistakes_are_located(tmp_path: Path, change: Any, expected: str) -> None:
    spec = pages_spec()
    change(spec)
    with pytest.raises(UserError) as info:
        prepare(write_project(tmp_path, spec))
    assert any(expected in str(p) for p in info.value.problems), [str(p) for p in info.value.problems]


def test_delivery_and_a_table_without_dine_in_are_warned(tmp_path: Path) -> None:
    spec = pages_spec(modes=["takeaway"])
    spec["ordering"]["delivery"] = {"fee": 5}
    warnings = [str(w) for w in prepare(write_project(tmp_path, spec)).warnings]
    assert any("ordering.delivery: the ordering pages offer dine-in and takeaway only" in w for w in warnings)
    assert any("promotion.entry_points[0].query: this table sticker names a table, but ordering.modes has no "
               "dine_in" in w for w in warnings), warnings


def test_the_pages_and_the_service_are_generated(tmp_path: Path) -> None:
    spec = pages_spec(pages={"menu": {"id": "diancan", "title": "点单"}, "orders": None})
    spec["merchant"]["stores"][1]["name"] = "East'); my.alert({content: 'x'}); ('"
    spec["tabbar"]["items"][1].update(page="diancan", text="点单")
    spec["promotion"]["entry_points"][0]["page"] = "diancan"
    spec["pages"] = [p for p in spec["pages"] if p["id"] != "privacy"]  # the core's policy page then
    tree = prepare(write_project(tmp_path, spec)).tree
    app = json.loads(tree.text("app.json"))
    assert {"pages/diancan/diancan", "pages/order-confirm/order-confirm", "pages/order/order"} <= set(app["pages"])
    assert "pages/orders/orders" not in app["pages"]  # set to null: left out
    order_json = json.loads(tree.text("pages/order/order.json"))
    assert (order_json["pullRefresh"], order_json["allowsBounceVertical"]) == (True, "YES")
    assert json.loads(tree.text("pages/diancan/diancan.json"))["usingComponents"] == {}
    service = tree.text("services/ordering.js")
    config = json.loads(service.split("const CONFIG = ", 1)[1].split(";\n", 1)[0])
    assert config["pages"] == {"menu": {"kind": "tab", "url": "/pages/diancan/diancan"},
                               "confirm": "/pages/order-confirm/order-confirm", "order": "/pages/order/order"}
    assert config["modes"] == [{"id": "dine_in", "name": "堂食"}, {"id": "takeaway", "name": "自取"}]
    assert (config["packagingFee"], config["minimum"]) == (100, 1000)
    assert config["stores"][1]["name"] == "East'); my.alert({content: 'x'}); ('"  # data, never code
    menu = tree.text("pages/diancan/diancan.js")
    assert "menuLoad(this, \"b0\", query)" in menu and "mfOrderMenuShow();" in menu
    # The menu's products carry prices in fen for the cart's display total.
    data = json.loads(menu.split("data: ", 1)[1].split(",\n  // The query", 1)[0])
    latte = data["b0"]["sections"][0]["products"][0]
    assert (latte["id"], latte["price"], latte["price_text"]) == ("latte", 2800, "¥28.00")
    assert [(c["id"], c["price"]) for c in latte["options"][2]["choices"]] == [("shot", 500), ("syrup", 250)]
    policy = json.loads(tree.text("pages/privacy/privacy.js").split("data: ", 1)[1].split(",\n  // The query", 1)[0])
    assert any("创建订单" in item["why"] for item in policy["b0"]["items"])  # what ordering collects is listed


# --- the pages in Node, against the back end and the sandbox ---------------------------------

HARNESS = r"""
// Loads built pages with a `my` whose request reaches the live back end and whose
// tradePay pays through the sandbox's buyer (POST /sandbox/pay); runs STEPS. A step's
// `lose` drops the back end's answers to the next that many POST /orders (the phone hears a
// network error); `polls` counts the order page's polling timers (POLL_MS) waiting.
const path = require('path');
const [out, live, sandbox, appId, stepsJson, storageJson] = process.argv.slice(1);
const steps = JSON.parse(stepsJson);
const storage = JSON.parse(storageJson);
const log = { toasts: [], alerts: [], navigations: [], requests: [], snapshots: {}, polls: {} };
const tradeOrders = {};
const POLL_MS = 10000;
const polls = new Set();
const realSetTimeout = global.setTimeout;
const realClearTimeout = global.clearTimeout;
global.setTimeout = (fn, ms) => {
  const timer = realSetTimeout(() => { polls.delete(timer); fn(); }, ms);
  if (ms === POLL_MS) polls.add(timer);
  return timer;
};
global.clearTimeout = (timer) => { polls.delete(timer); realClearTimeout(timer); };
let lose = 0;
let pending = 0;
let location = null;
let sheetIndex = 0;
let globalData = {};
global.getApp = () => ({ globalData: globalData });
const later = (fn) => { pending += 1; setTimeout(() => { try { fn(); } finally { pending -= 1; } }, 0); };
global.my = {
  getStorageSync: ({ key }) => ({ data: storage[key] === undefined ? null : JSON.parse(storage[key]) }),
  setStorageSync: ({ key, data }) => { storage[key] = JSON.stringify(data); },
  removeStorageSync: ({ key }) => { delete storage[key]; },
  showLoading: () => {}, hideLoading: () => {}, stopPullDownRefresh: () => {}, setNavigationBar: () => {},
  showToast: (t) => log.toasts.push(t.content),
  alert: (a) => log.alerts.push({ title: a.title, content: a.content }),
  navigateTo: (o) => log.navigations.push(o.url),
  redirectTo: (o) => log.navigations.push(o.url),
  switchTab: (o) => log.navigations.push(o.url),
  getAuthCode: (o) => later(() => o.success({ authCode: 'sandbox-user-7' })),
  getLocation: (o) => later(() => (location ? o.success(location) : o.fail({ error: 11 }))),
  showActionSheet: (o) => later(() => o.success({ index: sheetIndex })),
  tradePay: (o) => {
    pending += 1;
    fetch(sandbox + '/sandbox/pay', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appId: appId, outTradeNo: tradeOrders[o.tradeNO] }) })
      .then((res) => { if (res.status !== 200) throw new Error('sandbox pay ' + res.status); o.success({ resultCode: '9000' }); })
      .catch((e) => { log.toasts.push('pay error ' + e.message); o.fail({ error: 1 }); })
      .finally(() => { pending -= 1; });
  },
  request: (o) => {
    pending += 1;
    const url = o.url.replace(BASE_URL_JSON, live);
    log.requests.push({ method: o.method, path: new URL(url).pathname, key: (o.headers || {})['Idempotency-Key'] || null });
    const body = o.method === 'GET' ? undefined : JSON.stringify(o.data || {});
    const lost = o.method === 'POST' && url.endsWith('/orders') && lose > 0;
    if (lost) lose -= 1;
    fetch(url, { method: o.method, headers: o.headers, body }).then(async (res) => {
      const text = await res.text();
      if (lost) { o.fail({ error: 12 }); return; }
      const data = text ? JSON.parse(text) : '';
      if (data && data.tradeNo) tradeOrders[data.tradeNo] = data.id;
      const hdrs = Object.fromEntries(res.headers.entries());
      if (res.status >= 200 && res.status < 300) o.success({ status: res.status, data, headers: hdrs });
      else o.fail({ error: 19, status: res.status, data, headers: hdrs });
    }, () => o.fail({ error: 12 })).finally(() => { pending -= 1; });
  },
};
let definition = null;
global.Page = (o) => { definition = o; };
function open(route, query) {
  delete require.cache[require.resolve(path.join(out, route + '.js'))];
  require(path.join(out, route + '.js'));
  const page = Object.assign({}, definition, { route: route, data: JSON.parse(JSON.stringify(definition.data)) });
  page.setData = function (update) {
    for (const [k, v] of Object.entries(update)) {
      const parts = k.split('.');
      let target = this.data;
      parts.slice(0, -1).forEach((p) => { target = target[p]; });
      target[parts[parts.length - 1]] = v;
    }
  };
  page.onLoad(query || {});
  if (page.onShow) page.onShow();
  return page;
}
function follow(url) {
  const [route, search] = url.replace(/^\//, '').split('?');
  return open(route, Object.fromEntries(new URLSearchParams(search || '')));
}
const idle = () => new Promise((resolve) => { const tick = () => (pending ? setTimeout(tick, 5) : resolve()); setTimeout(tick, 5); });
(async () => {
  let page = null;
  for (const step of steps) {
    if (step.location !== undefined) location = step.location;
    if (step.sheet !== undefined) sheetIndex = step.sheet;
    if (step.app !== undefined) globalData = Object.assign({}, step.app, { at: Date.now() });
    if (step.lose !== undefined) lose = step.lose;
    if (step.do === 'open') page = open(step.route, step.query);
    if (step.do === 'follow') page = follow(log.navigations[log.navigations.length - 1]);
    if (step.do === 'tap') page[step.handler]({ currentTarget: { dataset: step.dataset || {} } });
    if (step.do === 'input') page[step.handler]({ detail: { value: step.value } });
    if (step.do === 'show') page.onShow();
    for (let i = 0; i < (step.do === 'refresh' ? step.times : 0); i += 1) page.onPullDownRefresh();
    await idle();
    if (step.as) log.snapshots[step.as] = JSON.parse(JSON.stringify(page.data.b0));
    if (step.as) log.polls[step.as] = polls.size;
  }
  if (page && page.onHide) page.onHide();
  log.storage = storage;
  process.stdout.write(JSON.stringify(log));
  process.exit(0);
})();
""".replace("BASE_URL_JSON", json.dumps(BASE_URL))


@dataclass
class Device:
    """The built app, the live back end and the sandbox: `run(steps)` on one device."""

    out: Path
    url: str
    sandbox_url: str
    app: Any

    def run(self, steps: list[dict[str, Any]], storage: dict[str, str] | None = None) -> dict[str, Any]:
        result = subprocess.run(["node", "-e", HARNESS, str(self.out), self.url, self.sandbox_url, APPID,
                                 json.dumps(steps), json.dumps(storage or {})],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "TZ": "Asia/Shanghai"})  # a phone in China
        assert result.returncode == 0, result.stderr
        log: dict[str, Any] = json.loads(result.stdout)
        return log

    def publish(self, products: list[dict[str, Any]]) -> None:
        document = {"name": "Test Shop", "coupons": [], "products": products}
        self.app.state.api.storage.add_content_version(APPID, json.dumps(document, ensure_ascii=False))


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Device]:
    if shutil.which("node") is None:
        pytest.fail("node is required for this test (.ci/run installs it)")
    spec = write_project(tmp_path / "shop", pages_spec())
    out = tmp_path / "out"
    build(spec, out)
    merchant = load_merchant(spec)
    with ExitStack() as stack:
        try:
            sandbox = stack.enter_context(LocalSandbox([merchant], timeout=10))
        except PermissionError:
            unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
        app = create_app([merchant], f"sqlite:///{tmp_path / 'serve.sqlite3'}", alipay=sandbox.alipay,
                         secret=SECRET)
        stack.callback(app.state.api.storage.dispose)
        live = stack.enter_context(LiveServer(app))
        monkeypatch.setenv("MPFORGE_PUBLIC_URL", live.url)  # where the sandbox posts the notification
        yield Device(out, live.url, f"http://{sandbox.server.host}", app)


MENU = "pages/menu/menu"
LATTE_LARGE_SHOT = [  # 拿铁 with 大杯 (+4), 热, 浓缩 (+5), two of them: 2 x 37
    {"do": "tap", "handler": "onOrderAdd", "dataset": {"product": "latte"}, "as": "sheet"},
    {"do": "tap", "handler": "onOrderSheetAdd", "as": "missing"},  # 温度 has no default
    {"do": "tap", "handler": "onOrderChoice", "dataset": {"option": "size", "choice": "l"}},
    {"do": "tap", "handler": "onOrderChoice", "dataset": {"option": "temp", "choice": "hot"}},
    {"do": "tap", "handler": "onOrderChoice", "dataset": {"option": "extra", "choice": "shot"}},
    {"do": "tap", "handler": "onOrderSheetQuantity", "dataset": {"delta": "1"}, "as": "chosen"},
    {"do": "tap", "handler": "onOrderSheetAdd", "as": "added"},
]


def test_a_table_sticker_order_is_paid_and_shown_paid(device: Device) -> None:
    log = device.run([
        {"do": "open", "route": MENU, "query": {"store": "east", "table": "A3", "ch": "table"}, "as": "menu"},
        *LATTE_LARGE_SHOT,
        {"do": "tap", "handler": "onOrderCheckout"},
        {"do": "follow", "as": "confirm"},
        {"do": "tap", "handler": "onOrderSubmit"},
        {"do": "follow", "as": "order"},
        {"do": "open", "route": "pages/orders/orders", "as": "orders"},
    ])
    menu = log["snapshots"]["menu"]
    assert (menu["store"], menu["table"]) == ({"id": "east", "name": "East"}, "A3")
    # The croissant is sold at the main store only: hidden at east, with its category.
    bakery = next(s for s in menu["sections"] if s["id"] == "bakery")
    assert bakery["hidden"] and [p["hidden"] for p in bakery["products"]] == [True]
    sheet = log["snapshots"]["sheet"]["sheet"]
    assert [o["name"] for o in sheet["options"]] == ["杯型", "温度", "加料"]
    assert [c["on"] for c in sheet["options"][0]["choices"]] == [True, False]  # the default, 中杯
    assert log["snapshots"]["missing"]["sheet"]["missing"] == "请选择温度" and "请选择温度" in log["toasts"]
    assert log["snapshots"]["chosen"]["sheet"]["unit_text"] == "¥74.00"
    added = log["snapshots"]["added"]
    assert added["sheet"] is None
    assert (added["cart"]["count"], added["cart"]["total_text"]) == (2, "¥74.00")
    [line] = added["cart"]["lines"]
    assert (line["name"], line["choices_text"], line["amount_text"]) == ("拿铁", "大杯/热/浓缩", "¥74.00")
    confirm = log["snapshots"]["confirm"]
    assert (confirm["mode"], confirm["table"], confirm["total_text"], confirm["can_pay"]) == (
        "dine_in", "A3", "¥74.00", True)
    # The order: created by the back end (one POST, with a key), paid through the sandbox.
    [post] = [r for r in log["requests"] if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert post["key"]
    assert log["toasts"][-1] == "支付完成，正在确认"  # resultCode 9000 proves nothing: the order page asks
    assert log["navigations"][-1].startswith("/pages/order/order?id=HC")
    order = log["snapshots"]["order"]
    assert order["state"] == "shown"
    shown = order["order"]
    assert (shown["status"], shown["status_text"], shown["total_text"], shown["table"]) == (
        "paid", "已支付", "¥74.00", "A3")
    assert shown["lines"] == [{"name": "拿铁", "quantity": 2, "amount_text": "¥74.00",
                               "choices_text": "大杯/热/浓缩"}]
    assert not shown["payable"]
    stored = orders.find(device.app.state.api.storage, APPID, shown["id"])
    assert stored is not None and shown["created_text"] == f"{stored.created_at.astimezone(CHINA):%Y-%m-%d %H:%M}"
    # The cart is empty after ordering; the attempt's key is gone (settled).
    storage = log["storage"]
    assert json.loads(storage[f"mpforge.ordering.{APPID}.cart.east"]) == []
    assert f"mpforge.ordering.{APPID}.attempt" not in storage
    [listed] = log["snapshots"]["orders"]["orders"]
    assert (listed["id"], listed["status_text"], listed["summary"]) == (shown["id"], "已支付", "拿铁×2")


def test_without_a_sticker_the_nearest_store_is_chosen_and_can_be_changed(device: Device) -> None:
    # East (31.2, 121.5) is nearer to this point than main (31.2, 121.4).
    log = device.run([{"do": "open", "route": MENU, "location": {"latitude": "31.21", "longitude": "121.49"},
                       "as": "near"},
                      {"do": "tap", "handler": "onOrderStore", "sheet": 0, "as": "changed"}])
    assert log["snapshots"]["near"]["store"]["id"] == "east" and log["snapshots"]["near"]["table"] == ""
    assert log["snapshots"]["changed"]["store"]["id"] == "main"
    refused = device.run([{"do": "open", "route": MENU, "location": None, "as": "first"}])
    assert refused["snapshots"]["first"]["store"]["id"] == "main"  # location refused: the first store


def test_a_sticker_scanned_while_the_menu_is_open_moves_the_order_to_its_table(device: Device) -> None:
    first = device.run([{"do": "open", "route": MENU, "query": {"store": "main", "table": "B1"}, "as": "b1"}])
    assert (first["snapshots"]["b1"]["store"]["id"], first["snapshots"]["b1"]["table"]) == ("main", "B1")
    # The app was open; the scan reaches the app's attribution (globalData), not onLoad.
    log = device.run([{"do": "open", "route": MENU, "as": "before"},
                      {"do": "show", "app": {"store": "east", "table": "A9", "channel": "table"}, "as": "scanned"},
                      {"do": "tap", "handler": "onOrderStore", "sheet": 0},
                      {"do": "show", "as": "changed"}], first["storage"])
    assert (log["snapshots"]["before"]["store"]["id"], log["snapshots"]["before"]["table"]) == ("main", "B1")
    assert (log["snapshots"]["scanned"]["store"]["id"], log["snapshots"]["scanned"]["table"]) == ("east", "A9")
    # Choosing another store afterwards sticks: the same scan is not applied again.
    assert (log["snapshots"]["changed"]["store"]["id"], log["snapshots"]["changed"]["table"]) == ("main", "")


def test_a_product_sold_out_before_paying_is_refused_in_words(device: Device) -> None:
    filled = device.run([{"do": "open", "route": MENU, "query": {"store": "main", "table": "B1"}},
                         *LATTE_LARGE_SHOT])
    device.publish([{"id": "latte", "name": "拿铁", "price": "28.00", "soldOut": True}])
    log = device.run([{"do": "open", "route": "pages/order-confirm/order-confirm", "as": "confirm"},
                      {"do": "tap", "handler": "onOrderSubmit", "as": "refused"}], filled["storage"])
    assert log["snapshots"]["confirm"]["can_pay"]
    [alert] = log["alerts"]
    assert alert == {"title": "有商品已售罄", "content": "「拿铁」已售罄，请从购物车移除后再试"}
    assert not log["navigations"] and not log["snapshots"]["refused"]["busy"]
    # The refusal settled the attempt; the menu then shows the product sold out and drops it.
    again = device.run([{"do": "open", "route": MENU, "as": "menu"}], log["storage"])
    latte = again["snapshots"]["menu"]["sections"][0]["products"][0]
    assert latte["sold_out"] and again["snapshots"]["menu"]["cart"]["count"] == 0
    assert f"mpforge.ordering.{APPID}.attempt" not in log["storage"]


def test_an_unsettled_attempt_keeps_its_key_and_the_retry_gets_one_order(device: Device,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    filled = device.run([{"do": "open", "route": MENU, "query": {"store": "main", "table": "B1"}},
                         *LATTE_LARGE_SHOT])
    monkeypatch.delenv("MPFORGE_PUBLIC_URL")  # the server answers 503: the outcome is not final
    first = device.run([{"do": "open", "route": "pages/order-confirm/order-confirm"},
                        {"do": "tap", "handler": "onOrderSubmit"}], filled["storage"])
    [alert] = first["alerts"]
    assert alert == {"title": "门店暂时无法接单", "content": "请稍后再试"}  # never the server's message
    assert not first["navigations"]
    monkeypatch.setenv("MPFORGE_PUBLIC_URL", device.url)
    again = device.run([{"do": "open", "route": "pages/order-confirm/order-confirm"},
                        {"do": "tap", "handler": "onOrderSubmit"}], first["storage"])
    keys = [r["key"] for log in (first, again) for r in log["requests"]
            if r["method"] == "POST" and r["path"].endswith("/orders")]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert again["navigations"][-1].startswith("/pages/order/order?id=")
    with device.app.state.api.storage.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders")).scalar() == 1


CONFIRM = "pages/order-confirm/order-confirm"
ATTEMPT = f"mpforge.ordering.{APPID}.attempt"


def posted_keys(log: dict[str, Any]) -> list[str]:
    return [r["key"] for r in log["requests"] if r["method"] == "POST" and r["path"].endswith("/orders")]


def lost_answer(device: Device) -> tuple[dict[str, Any], str]:
    """A cart of two lattes at main's table B1 sent once, the answer lost on the way: the
    back end made the order, the phone keeps the attempt's key. The log and the key."""
    filled = device.run([{"do": "open", "route": MENU, "query": {"store": "main", "table": "B1"}},
                         *LATTE_LARGE_SHOT])
    lost = device.run([{"do": "open", "route": CONFIRM}, {"do": "tap", "handler": "onOrderSubmit", "lose": 1}],
                      filled["storage"])
    assert lost["toasts"][-1] == "网络异常，请再点一次去支付" and not lost["navigations"]
    [key] = posted_keys(lost)
    assert json.loads(lost["storage"][ATTEMPT])["key"] == key
    return lost, key


def test_an_attempt_whose_order_expired_is_sent_again_once_with_a_new_key(device: Device) -> None:
    """The answer lost, then the order closed unpaid: 去支付 again hears that the key's order
    expired (409 order_expired; a back end before it answered 201 with the closed order),
    forgets the key and sends the same cart once more with a new one."""
    lost, first = lost_answer(device)
    with device.app.state.api.storage.engine.begin() as conn:
        conn.execute(text("UPDATE orders SET status = 'closed' WHERE idempotency_key = :key"), {"key": first})
    again = device.run([{"do": "open", "route": CONFIRM}, {"do": "tap", "handler": "onOrderSubmit"},
                        {"do": "follow", "as": "order"}], lost["storage"])
    keys = posted_keys(again)
    assert len(keys) == 2 and keys[0] == first and keys[1] != first
    assert again["alerts"] == [] and again["toasts"][-1] == "支付完成，正在确认"
    shown = again["snapshots"]["order"]["order"]
    assert shown["status_text"] == "已支付"
    paid = orders.find(device.app.state.api.storage, APPID, shown["id"])
    assert paid is not None and paid.idempotency_key == keys[1]
    assert json.loads(again["storage"][f"mpforge.ordering.{APPID}.cart.main"]) == []
    assert ATTEMPT not in again["storage"]


def test_a_kept_key_is_dropped_once_its_order_could_no_longer_be_paid(device: Device) -> None:
    lost, first = lost_answer(device)
    attempt = json.loads(lost["storage"][ATTEMPT])
    attempt["at"] -= 16 * 60 * 1000  # the shop's pay_within_minutes is 15
    again = device.run([{"do": "open", "route": CONFIRM}, {"do": "tap", "handler": "onOrderSubmit"}],
                       {**lost["storage"], ATTEMPT: json.dumps(attempt)})
    [key] = posted_keys(again)
    assert key != first and again["navigations"][-1].startswith("/pages/order/order?id=")
    with device.app.state.api.storage.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM orders")).scalar() == 2


def test_an_order_without_a_trade_says_it_will_be_closed(device: Device) -> None:
    lost, key = lost_answer(device)
    with device.app.state.api.storage.engine.begin() as conn:  # as when Alipay did not answer
        conn.execute(text("UPDATE orders SET trade_no = NULL WHERE idempotency_key = :key"), {"key": key})
        order_id = conn.execute(text("SELECT out_trade_no FROM orders")).scalar()
    shown = device.run([{"do": "open", "route": "pages/order/order", "query": {"id": order_id}, "as": "order"}],
                       lost["storage"])
    order = shown["snapshots"]["order"]["order"]
    assert (order["status_text"], order["payable"], order["unpaid_note"]) == ("待支付", False,
                                                                              "支付未发起，订单将自动关闭")


def test_pulling_down_while_the_order_is_fetched_keeps_one_polling_loop(device: Device) -> None:
    paid = device.run([{"do": "open", "route": MENU, "query": {"store": "main", "table": "B1"}},
                       *LATTE_LARGE_SHOT, {"do": "tap", "handler": "onOrderCheckout"}, {"do": "follow"},
                       {"do": "tap", "handler": "onOrderSubmit"}, {"do": "follow", "as": "order"}])
    order = paid["snapshots"]["order"]["order"]
    assert order["status"] == "paid" and order["unpaid_note"] == ""  # under way: polled
    log = device.run([{"do": "open", "route": "pages/order/order", "query": {"id": order["id"]}, "as": "shown"},
                      {"do": "refresh", "times": 2, "as": "refreshed"}], paid["storage"])
    assert len([r for r in log["requests"] if r["method"] == "GET"]) == 3
    assert log["polls"] == {"shown": 1, "refreshed": 1}


def test_a_typed_table_enables_paying_before_the_input_is_left(device: Device) -> None:
    filled = device.run([{"do": "open", "route": MENU, "query": {"store": "main"}}, *LATTE_LARGE_SHOT])
    log = device.run([{"do": "open", "route": CONFIRM, "as": "none"},
                      {"do": "input", "handler": "onOrderTableInput", "value": "B", "as": "typed"},
                      {"do": "input", "handler": "onOrderTableInput", "value": "B 1", "as": "invalid"},
                      {"do": "input", "handler": "onOrderTable", "value": "B1", "as": "left"}], filled["storage"])
    snaps = log["snapshots"]
    assert (snaps["none"]["mode"], snaps["none"]["can_pay"], snaps["none"]["hint"]) == (
        "dine_in", False, "请填写桌号（见桌上的点单码）")
    assert (snaps["typed"]["can_pay"], snaps["typed"]["hint"]) == (True, "")
    assert snaps["typed"]["table"] == ""  # the input keeps what is typed: not rewritten on each key
    assert not snaps["invalid"]["can_pay"]
    assert (snaps["left"]["can_pay"], snaps["left"]["table"]) == (True, "B1")


def test_an_order_page_without_a_session_asks_for_a_tap(device: Device) -> None:
    shown = device.run([{"do": "open", "route": "pages/order/order", "query": {"id": "HC1"}, "as": "signed_out"}])
    assert shown["snapshots"]["signed_out"]["state"] == "signed_out" and shown["requests"] == []
    tapped = device.run([{"do": "open", "route": "pages/order/order", "query": {"id": "HC1"}},
                         {"do": "tap", "handler": "onOrderLogin", "as": "missing"}])
    assert tapped["snapshots"]["missing"]["state"] == "missing"  # no such order of this user: 404


# --- the sample in `mpforge dev`, in Chromium ----------------------------------------------

def test_the_restaurant_sample_orders_and_pays_in_the_preview(tmp_path: Path, page: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """lao-jie-noodles in `mpforge dev`: the menu, an options sheet, the cart, the confirm
    page, the sandbox's cashier (the preview's my.tradePay) and the order page saying 已支付."""
    # The back end dev runs gives Alipay (the sandbox) its own URL for notifications.
    monkeypatch.delenv("MPFORGE_PUBLIC_URL", raising=False)
    spec = copy_sample("lao-jie-noodles", tmp_path / "project")
    data = yaml.safe_load(spec.read_text("utf-8"))
    del data["ordering"]["hours"]  # open at any hour the test runs
    spec.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    dev = DevProcess(spec, tmp_path / "out")
    try:
        wait_until(lambda: any("back end started" in line for line in dev.lines), 40, "the back end's start")
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        page.goto(dev.url + "#pages/menu/menu")
        page.locator("body[data-page='pages/menu/menu']").wait_for()
        wait_until(lambda: "春熙路店" in shown_text(page), 20, "the nearest store")
        page.locator("[data-mp-on-tap='onOrderAdd']").first.click()  # 红烧牛肉面: its options
        page.locator(".mf-order-sheet").wait_for()
        page.locator("[data-mp-on-tap='onOrderChoice'][data-mp-dataset*='three']").first.click()  # 三两 +3
        wait_until(lambda: "¥31.00" in shown_text(page), 10, "the sheet's price")
        page.locator("[data-mp-on-tap='onOrderSheetAdd']").click()
        wait_until(lambda: "¥31.00" in page.locator(".mf-order-cartbar").inner_text(), 10, "the cart's total")
        page.locator("[data-mp-on-tap='onOrderCheckout']").click()
        page.locator("body[data-page='pages/order-confirm/order-confirm']").wait_for()
        page.locator("[data-mp-on-tap='onOrderMode'][data-mp-dataset*='takeaway']").click()  # 自取: +¥1 packaging
        wait_until(lambda: "去支付 ¥32.00" in shown_text(page), 10, "the confirm page's total")
        page.screenshot(path=str(tmp_path / "confirm.png"))
        page.locator("[data-mp-on-tap='onOrderSubmit']").click()
        page.locator("body[data-page='pages/order/order']").wait_for(timeout=30000)
        wait_until(lambda: "已支付" in shown_text(page), 20, "the order paid")
        assert "¥32.00" in shown_text(page) and dialogs and "支付宝沙箱收银台" in dialogs[0]
        # the sandbox's signed notification reached the dev back end, which took it
        assert "notification answered success" in page.locator("#mpf-log").inner_text()
        page.screenshot(path=str(tmp_path / "order.png"))
    finally:
        assert dev.stop() == 0, "".join(dev.lines)
