"""The ordering plugin's back end: the `ordering:` section, pricing on the server in
fen, and orders paid through the sandbox (trade.create, a signed notification,
trade.query, trade.refund), on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from helpers import MINIMAL_SPEC, write_project
from serve_support import APPID, NOON, SECRET, ApiClient, Clock, Database, LiveServer, Served, unavailable

from builder.errors import UserError
from builder.pipeline import prepare
from builder.serve.alipay_errors import AlipayError
from builder.serve.app import create_app
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import Merchant, load_merchant
from builder.serve.sandbox import signed_notification
from builder.serve.sandbox_keys import generate_key_pair
from builder.serve.sandbox_state import Faults, sandbox_user_id
from plugins.ordering import orders
from plugins.ordering.models import OrderingSection
from plugins.ordering.pricing import LineRequest, Menu, OrderRequest, Refused, price_order
from plugins.ordering.sandbox import trades
from plugins.ordering.serve import reconcile, refund_order

pytest_plugins = ["serve_fixtures"]  # database, postgres

CATALOGUE = {
    "categories": [{"id": "coffee", "name": "咖啡"}, {"id": "bakery", "name": "烘焙"}],
    "products": [
        {"id": "latte", "name": "拿铁", "category": "coffee", "price": 28, "options": [
            {"id": "size", "name": "杯型", "default": "m",
             "choices": [{"id": "m", "name": "中杯"}, {"id": "l", "name": "大杯", "price": 4}]},
            {"id": "temp", "name": "温度", "choices": [{"id": "hot", "name": "热"}, {"id": "iced", "name": "冰"}]},
            {"id": "extra", "name": "加料", "multiple": True,
             "choices": [{"id": "shot", "name": "浓缩", "price": 5}, {"id": "syrup", "name": "糖浆", "price": 2.5}]},
        ]},
        {"id": "mocha", "name": "摩卡", "category": "coffee", "price": 30, "sold_out": True},
        {"id": "croissant", "name": "可颂", "category": "bakery", "price": 9.5, "stores": ["main"]},
    ],
}
EVERY_DAY = {day: ["09:00-21:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
ORDERING = {"delivery": {"fee": 6}, "minimum": 10, "packaging_fee": 1, "order_prefix": "HC",
            "hours": [{"store": "main", **EVERY_DAY}, {"store": "east", "mon": ["14:00-18:00"]}]}


def shop_spec(**ordering: Any) -> dict[str, Any]:
    spec = copy.deepcopy(MINIMAL_SPEC)
    spec["app"]["appid"] = APPID
    spec["merchant"]["stores"].append({"id": "east", "name": "East", "address": "2 Road", "lat": 31.2, "lng": 121.5,
                                       "hours": "14:00-18:00"})
    spec["backend"] = {"base_url": "https://api.example.com"}
    spec["catalogue"] = copy.deepcopy(CATALOGUE)
    spec["ordering"] = {**copy.deepcopy(ORDERING), **ordering}
    # The back end logs users in (my.getAuthCode), which needs a privacy policy page.
    spec["pages"].append({"id": "privacy", "title": "隐私政策", "blocks": [{"type": "text", "text": "我们只用于点单。"}]})
    return spec


@pytest.fixture(scope="module")
def merchant(tmp_path_factory: pytest.TempPathFactory) -> Merchant:
    return load_merchant(write_project(tmp_path_factory.mktemp("shop"), shop_spec()))


def menu_of(merchant: Merchant, runtime: dict[str, tuple[Decimal, bool]] | None = None) -> Menu:
    section = merchant.sections["ordering"]
    assert isinstance(section, OrderingSection)
    return Menu(products={p.id: p for p in merchant.products}, ordering=section, stores=merchant.stores,
                runtime=runtime or {})


def line(product: str, quantity: int = 1, **choices: list[str]) -> LineRequest:
    return LineRequest(product, quantity, choices)


# --- the spec section ----------------------------------------------------------------------

@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s.pop("catalogue"), "ordering: ordering needs a catalogue to order from"),
    (lambda s: s["ordering"]["hours"][1].update(store="west"), "ordering.hours[1].store: no store with id 'west'"),
    (lambda s: s["ordering"]["hours"][0].update(mon=["9-21"]),
     "ordering.hours[0].mon[0]: opening hours '9-21' are not HH:MM-HH:MM"),
    (lambda s: s["ordering"]["hours"][0].update(tue=["21:00-09:00"]),
     "ordering.hours[0].tue[0]: opening hours '21:00-09:00' end before they start"),
    (lambda s: s["ordering"].update(product_code="WAP_PAY"), "ordering.product_code"),
    (lambda s: s["ordering"].update(modes=["delivery"]), "ordering.modes[0]"),
    (lambda s: s["ordering"].update(pay_within_minutes=121), "ordering.pay_within_minutes"),
    (lambda s: s["catalogue"]["products"][2].update(stock=-1), "catalogue.products[2].stock"),
])
def test_ordering_mistakes_are_located(tmp_path: Path, change: Callable[[dict[str, Any]], Any],
                                       expected: str) -> None:
    spec = shop_spec()
    change(spec)
    with pytest.raises(UserError) as info:
        prepare(write_project(tmp_path, spec))
    assert any(expected in str(p) for p in info.value.problems), [str(p) for p in info.value.problems]


def test_the_section_defaults_offer_dine_in_and_takeaway_paid_with_jsapi(merchant: Merchant) -> None:
    section = OrderingSection.model_validate({})
    assert (section.offered(), section.product_code, section.order_prefix) == (
        ["dine_in", "takeaway"], "JSAPI_PAY", "MP")
    assert menu_of(merchant).ordering.offered() == ["dine_in", "takeaway", "delivery"]


# --- pricing: on the server, in fen ---------------------------------------------------------

def test_an_order_is_priced_in_fen_from_the_catalogue(merchant: Merchant) -> None:
    priced = price_order(menu_of(merchant), OrderRequest("main", "takeaway", [
        line("latte", 2, temp=["iced"], extra=["shot", "syrup"]), line("croissant")]), NOON)
    latte, croissant = priced.lines
    # 28 + medium 0 (the default) + iced 0 + shot 5 + syrup 2.50
    assert (latte.unit_price, latte.amount) == (3550, 7100)
    assert [(c.option, c.choice) for c in latte.choices] == [("size", "m"), ("temp", "iced"), ("extra", "shot"),
                                                             ("extra", "syrup")]
    assert (croissant.unit_price, croissant.amount) == (950, 950)
    assert (priced.subtotal, priced.packaging_fee, priced.delivery_fee, priced.total) == (8050, 100, 0, 8150)
    dine_in = price_order(menu_of(merchant), OrderRequest("main", "dine_in", [line("croissant", 2)]), NOON)
    delivery = price_order(menu_of(merchant), OrderRequest("main", "delivery", [line("croissant", 2)]), NOON)
    assert (dine_in.total, delivery.total) == (1900, 1900 + 100 + 600)


def refusal(merchant: Merchant, request: OrderRequest, **runtime: tuple[Decimal, bool]) -> tuple[str, list[str]]:
    with pytest.raises(Refused) as info:
        price_order(menu_of(merchant, dict(runtime)), request, NOON)
    return info.value.code, [f"{p.location}: {p.message}" for p in info.value.problems]


def test_every_problem_of_an_order_is_located(merchant: Merchant) -> None:
    code, problems = refusal(merchant, OrderRequest("main", "dine_in", [
        line("lattee"),
        line("latte", size=["xl"], temp=["hot"]),
        line("latte", size=["m", "l"], temp=["hot"]),
        line("latte"),
        line("latte", temp=["hot"], sugar=["none"]),
        line("latte", 100, temp=["hot"]),
    ]))
    assert code == "invalid_order"
    assert problems == [
        "lines.0.product: no product 'lattee' in the catalogue",
        "lines.1.choices.size: option '杯型' has no choice 'xl'; its choices are m, l",
        "lines.2.choices.size: option '杯型' takes one choice, not 2",
        "lines.3.choices.temp: option '温度' needs a choice: one of hot, iced",
        "lines.4.choices.sugar: '拿铁' has no option 'sugar'; its options are size, temp, extra",
        "lines.5.quantity: quantity 100 is not 1 to 99",
    ]


def test_store_mode_and_availability_are_checked(merchant: Merchant) -> None:
    assert refusal(merchant, OrderRequest("west", "dine_in", [line("croissant", 2)])) == (
        "invalid_order", ["store: no store 'west'; the stores are main, east"])
    assert refusal(merchant, OrderRequest("east", "dine_in", [line("croissant", 2)]))[1] == [
        "lines.0.product: '可颂' is not sold at store 'east' (only at main)",
        "store: store 'east' takes no orders now (China time Mon 12:00); see its hours"]
    assert refusal(merchant, OrderRequest("main", "dine_in", [line("mocha")])) == (
        "sold_out", ["lines.0.product: '摩卡' is sold out"])
    assert refusal(merchant, OrderRequest("main", "dine_in", [line("croissant")])) == (
        "below_minimum", ["lines: the products cost 9.50 yuan; the minimum order is 10.00"])
    no_delivery = menu_of(merchant).ordering.model_copy(update={"delivery": None})
    with pytest.raises(Refused, match="mode 'delivery' is not offered; this shop offers dine_in, takeaway"):
        price_order(Menu(menu_of(merchant).products, no_delivery, merchant.stores, {}),
                    OrderRequest("main", "delivery", [line("croissant", 2)]), NOON)
    # East opens at 14:00 on Mondays (China time: 06:00 UTC).
    assert price_order(menu_of(merchant), OrderRequest("east", "dine_in", [line("latte", temp=["hot"])]),
                       NOON + timedelta(hours=2)).total == 2800


def test_the_runtime_content_decides_price_and_sold_out(merchant: Merchant) -> None:
    """A published content version changes a price or sells a product out without a new
    version of the mini-program: pricing reads it, not the spec's."""
    menu = menu_of(merchant, {"latte": (Decimal("25.50"), False), "mocha": (Decimal(30), False)})
    priced = price_order(menu, OrderRequest("main", "dine_in", [line("latte", temp=["hot"]), line("mocha")]), NOON)
    assert [ln.unit_price for ln in priced.lines] == [2550, 3000]
    assert refusal(merchant, OrderRequest("main", "dine_in", [line("croissant", 2)]),
                   croissant=(Decimal("9.5"), True))[0] == "sold_out"


# --- orders, paid through the sandbox ------------------------------------------------------

@dataclass
class Shop:
    served: Served
    live: LiveServer

    @property
    def api(self) -> ApiClient:
        return self.served.api

    def order(self, token: str, key: str = "order-1", body: dict[str, Any] | None = None) -> httpx.Response:
        body = body or {"store": "main", "mode": "dine_in", "table": "A3",
                        "lines": [{"product": "latte", "quantity": 2, "choices": {"temp": ["hot"], "size": ["l"]}}]}
        return self.api.post(f"/api/v1/{APPID}/orders", json=body,
                             headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})

    def get(self, token: str, order_id: str) -> httpx.Response:
        return self.api.get(f"/api/v1/{APPID}/orders/{order_id}", headers={"Authorization": f"Bearer {token}"})

    def pay(self, out_trade_no: str, **changes: Any) -> dict[str, Any]:
        answer = httpx.post(f"http://{self.served.sandbox.server.host}/sandbox/pay",
                            json={"appId": APPID, "outTradeNo": out_trade_no, **changes}, timeout=30)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def notify(self, fields: dict[str, str]) -> httpx.Response:
        return self.api.post(f"/api/v1/{APPID}/alipay/notify", data=fields)

    def stored(self, out_trade_no: str) -> orders.Order:
        found = orders.find(self.served.storage, APPID, out_trade_no)
        assert found is not None
        return found


@contextmanager
def open_shop(database: Database, merchant: Merchant, monkeypatch: pytest.MonkeyPatch,
              clock: Clock | None = None) -> Iterator[Shop]:
    """`merchant` served on `database` with a sandbox gateway, its app both in process
    and on a live uvicorn (Alipay posts notifications to the server's public URL)."""
    with ExitStack() as stack:
        try:
            sandbox = stack.enter_context(LocalSandbox([merchant], timeout=10))
        except PermissionError:
            unavailable("the sandbox listens on port 80 (the only port Alipay's SDK reaches), which needs root")
        clock = clock or Clock()
        app = create_app([merchant], database.url, alipay=sandbox.alipay, secret=SECRET, clock=clock)
        stack.callback(app.state.api.storage.dispose)
        api = ApiClient(app)
        stack.callback(api.close)
        live = stack.enter_context(LiveServer(app))
        monkeypatch.setenv("MPFORGE_PUBLIC_URL", live.url)
        yield Shop(Served(app, api, sandbox, clock, database), live)


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    with open_shop(database, load_merchant(write_project(tmp_path / "shop", shop_spec())), monkeypatch) as opened:
        yield opened


def test_an_order_is_created_paid_by_a_signed_notification_once(shop: Shop) -> None:
    token = shop.served.login("ann")
    created = shop.order(token)
    assert created.status_code == 201, created.text
    order = created.json()
    # 2 x (28 + large 4): priced by the server; dine-in pays no packaging.
    assert (order["status"], order["total"], order["totalText"], order["packagingFee"]) == ("created", 6400,
                                                                                          "64.00", 0)
    assert order["id"].startswith("HC20260302") and order["table"] == "A3" and order["tradeNo"]
    assert order["lines"][0]["choices"] == [{"option": "size", "choice": "l", "name": "大杯", "price": 400},
                                            {"option": "temp", "choice": "hot", "name": "热", "price": 0}]
    trade = trades(shop.served.sandbox.state).get(APPID, order["id"])
    assert trade is not None and trade.trade_no == order["tradeNo"] and trade.total_amount == Decimal("64.00")
    assert trade.notify_url == f"{shop.live.url}/api/v1/{APPID}/alipay/notify"
    assert trade.buyer_id.startswith("2088")  # the session user, as buyer_id
    assert '"product_code": "JSAPI_PAY"' in trade.request and f'"op_app_id": "{APPID}"' in trade.request

    paid = shop.pay(order["id"])
    assert (paid["notifyStatus"], paid["notifyAnswer"]) == (200, "success")
    first = shop.stored(order["id"])
    assert first.status == orders.Status.PAID and first.paid_at is not None
    # Alipay resends (the same notification): answered success, nothing changes again.
    shop.served.clock.now = NOON + timedelta(minutes=4)
    again = shop.pay(order["id"])
    assert (again["notifyStatus"], again["notifyAnswer"]) == (200, "success")
    assert shop.stored(order["id"]) == first
    assert shop.get(token, order["id"]).json()["status"] == "paid"


def test_notifications_at_once_mark_the_order_paid_once(shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    order = shop.order(shop.served.login("ann")).json()
    caplog.set_level(logging.INFO, logger="plugins.ordering.serve")
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: shop.pay(order["id"]), range(4)))
    assert [(a["notifyStatus"], a["notifyAnswer"]) for a in answers] == [(200, "success")] * 4
    assert [r.getMessage() for r in caplog.records if r.getMessage().endswith(" paid")] == [
        f"app {APPID}: order {order['id']} paid"]
    assert shop.stored(order["id"]).status == orders.Status.PAID


def test_a_replayed_key_answers_the_same_order(shop: Shop) -> None:
    token = shop.served.login("ann")
    first, second = shop.order(token), shop.order(token)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    mine = shop.api.get(f"/api/v1/{APPID}/me/orders", headers={"Authorization": f"Bearer {token}"}).json()
    assert [o["id"] for o in mine["orders"]] == [first.json()["id"]]
    other = shop.order(token, body={"store": "main", "mode": "takeaway", "lines": [{"product": "croissant",
                                                                                     "quantity": 3}]})
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    # Another user neither sees the order nor shares the key.
    stranger = shop.served.login("bob")
    assert shop.get(stranger, first.json()["id"]).status_code == 404
    assert shop.order(stranger).json()["id"] != first.json()["id"]


def test_a_forged_notification_changes_nothing(shop: Shop) -> None:
    order = shop.order(shop.served.login("ann")).json()
    forger = generate_key_pair()
    fields = signed_notification(forger.private_pem, {
        "notify_type": "trade_status_sync", "app_id": APPID, "out_trade_no": order["id"],
        "trade_no": order["tradeNo"], "trade_status": "TRADE_SUCCESS", "total_amount": order["totalText"]})
    answer = shop.notify(fields)
    assert (answer.status_code, answer.text) == (400, "fail")
    unsigned = shop.notify({k: v for k, v in fields.items() if k != "sign"})
    assert (unsigned.status_code, unsigned.text) == (400, "fail")
    assert shop.stored(order["id"]).status == orders.Status.CREATED


def test_a_notification_of_another_amount_is_refused(shop: Shop) -> None:
    order = shop.order(shop.served.login("ann")).json()
    paid = shop.pay(order["id"], totalAmount="0.01")  # signed by Alipay's key, but not the order's total
    assert (paid["notifyStatus"], paid["notifyAnswer"]) == (400, "fail")
    assert shop.stored(order["id"]).status == orders.Status.CREATED


def test_orders_the_shop_cannot_take_are_refused_before_anything_is_stored(shop: Shop,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    token = shop.served.login("ann")
    sold_out = shop.order(token, body={"store": "main", "mode": "dine_in", "lines": [{"product": "mocha",
                                                                                       "quantity": 1}]})
    assert sold_out.status_code == 409
    assert sold_out.json()["error"]["code"] == "sold_out"
    assert sold_out.json()["error"]["fields"] == [{"location": "lines.0.product", "message": "'摩卡' is sold out"}]
    amount = shop.order(token, key="order-2", body={"store": "main", "mode": "dine_in", "total": 1,
                                                    "lines": [{"product": "croissant", "quantity": 2}]})
    assert amount.status_code == 422  # the client sends no amount at all
    monkeypatch.setenv("MPFORGE_PUBLIC_URL", "http://api.example.com")
    insecure = shop.order(token, key="order-3")
    assert (insecure.status_code, insecure.json()["error"]["code"]) == (503, "ordering_not_configured")
    assert "https" in insecure.json()["error"]["message"]
    assert orders.users_orders(shop.served.storage, APPID, orders.AlipayUser("user_id", "x")) == []
    with shop.served.storage.engine.connect() as conn:
        assert conn.execute(orders.ORDERS.select()).all() == []


def test_a_paid_order_is_refunded_once(shop: Shop) -> None:
    order = shop.order(shop.served.login("ann")).json()
    shop.pay(order["id"])
    client = shop.served.app.state.api.clients[APPID]
    refunded = refund_order(shop.served.storage, client, shop.stored(order["id"]), "customer asked")
    assert refunded.status == orders.Status.REFUNDED and refunded.refund_request_no == f"{order['id']}R"
    trade = trades(shop.served.sandbox.state).get(APPID, order["id"])
    assert trade is not None and trade.status == "TRADE_CLOSED" and trade.refunded == Decimal("64.00")
    # A retry of the same refund request moves no money (Alipay's rule for out_request_no).
    repeat = client.trade_refund(out_trade_no=order["id"], refund_amount="64.00",
                                 out_request_no=refunded.refund_request_no)
    assert (repeat.fund_change, repeat.refund_fee) == ("N", "64.00")
    with pytest.raises(orders.IllegalTransition, match="an order refunded cannot become refunded"):
        refund_order(shop.served.storage, client, refunded)


def test_reconciliation_marks_a_lost_payment_paid_and_closes_an_unpaid_order(shop: Shop) -> None:
    token = shop.served.login("ann")
    lost = shop.order(token).json()
    unpaid = shop.order(token, key="order-2").json()
    assert shop.pay(lost["id"], notify=False)["notifyAnswer"] is None
    clients = shop.served.app.state.api.clients
    assert reconcile(shop.served.storage, clients, {APPID: timedelta(minutes=5)}) == 0  # still time to pay
    shop.served.clock.now = NOON + timedelta(minutes=10)
    assert reconcile(shop.served.storage, clients, {APPID: timedelta(minutes=5)}) == 2
    assert shop.stored(lost["id"]).status == orders.Status.PAID
    # WAIT_BUYER_PAY after its time: the trade is closed (alipay.trade.close), then the order.
    assert shop.stored(unpaid["id"]).status == orders.Status.CLOSED
    trade = trades(shop.served.sandbox.state).get(APPID, unpaid["id"])
    assert trade is not None and trade.status == "TRADE_CLOSED"


def test_looking_at_an_unpaid_order_asks_alipay(shop: Shop) -> None:
    """The page was closed after paying and the notification is late: the next GET of the
    order asks Alipay (trade.query) and shows it paid."""
    token = shop.served.login("ann")
    order = shop.order(token).json()
    assert shop.get(token, order["id"]).json()["status"] == "created"  # WAIT_BUYER_PAY
    shop.pay(order["id"], notify=False)
    assert shop.get(token, order["id"]).json()["status"] == "paid"
    assert shop.stored(order["id"]).status == orders.Status.PAID


def test_an_order_alipay_did_not_answer_gets_its_trade_on_the_retry(shop: Shop) -> None:
    token = shop.served.login("ann")
    shop.served.sandbox.state.faults = Faults(busy=True)  # 20000: Alipay did not create the trade
    busy = shop.order(token)
    assert (busy.status_code, busy.json()["error"]["code"]) == (503, "alipay_unavailable")
    [stored] = orders.users_orders(shop.served.storage, APPID, orders.AlipayUser("user_id", sandbox_user_id("ann")))
    assert (stored.status, stored.trade_no) == (orders.Status.CREATED, None)
    shop.served.sandbox.state.faults = Faults()
    retried = shop.order(token)
    assert retried.status_code == 201 and retried.json()["id"] == stored.out_trade_no and retried.json()["tradeNo"]


def test_the_sandbox_refuses_trades_as_alipay_does(shop: Shop) -> None:
    token = shop.served.login("ann")
    order = shop.order(token).json()
    client = shop.served.app.state.api.clients[APPID]

    def refused(call: Callable[[], Any]) -> str:
        with pytest.raises(AlipayError) as info:
            call()
        return info.value.sub_code

    notify = f"{shop.live.url}/api/v1/{APPID}/alipay/notify"
    assert refused(lambda: client.trade_query("HC-none")) == "ACQ.TRADE_NOT_EXIST"
    assert refused(lambda: client.trade_refund(out_trade_no=order["id"], refund_amount="1.00",
                                               out_request_no="r1")) == "ACQ.TRADE_STATUS_ERROR"  # unpaid
    assert refused(lambda: client.trade_create(out_trade_no="HC2", total_amount="1.00", subject="x",
                                               notify_url=notify, buyer_open_id="unknown")) == "ACQ.INVALID_PARAMETER"
    assert refused(lambda: client.trade_create(out_trade_no=order["id"], total_amount="1.00", subject="x",
                                               notify_url=notify, buyer_id=sandbox_user_id("ann"))) == (
        "ACQ.CONTEXT_INCONSISTENT")  # the same out_trade_no with other parameters
    shop.pay(order["id"])
    assert client.trade_query(order["id"]).trade_status == "TRADE_SUCCESS"
    assert refused(lambda: client.trade_refund(out_trade_no=order["id"], refund_amount="64.01",
                                               out_request_no="r1")) == "ACQ.REASON_TRADE_REFUND_FEE_ERR"
    part = client.trade_refund(out_trade_no=order["id"], refund_amount="4.00", out_request_no="r1")
    assert (part.fund_change, part.refund_fee, client.trade_query(order["id"]).trade_status) == (
        "Y", "4.00", "TRADE_SUCCESS")  # a partial refund leaves the trade paid
    assert refused(lambda: client.trade_create(out_trade_no=order["id"], total_amount="64.00", subject="x",
                                               notify_url=notify, buyer_id=sandbox_user_id("ann"))) == (
        "ACQ.TRADE_HAS_SUCCESS")


def test_the_routes_are_documented_and_answer_what_the_document_says(shop: Shop) -> None:
    document = shop.api.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    assert paths["/api/v1/{appid}/orders"]["post"]["operationId"] == "createOrder"
    assert paths["/api/v1/{appid}/orders/{order_id}"]["get"]["operationId"] == "getOrder"
    assert paths["/api/v1/{appid}/me/orders"]["get"]["operationId"] == "listMyOrders"
    assert paths["/api/v1/{appid}/alipay/notify"]["post"]["operationId"] == "alipayNotify"
    token = shop.served.login("ann")
    created = shop.order(token)
    replies = [
        ("/api/v1/{appid}/orders", "post", 201, created),
        ("/api/v1/{appid}/orders", "post", 409, shop.order(token, key="k2", body={
            "store": "main", "mode": "dine_in", "lines": [{"product": "mocha", "quantity": 1}]})),
        ("/api/v1/{appid}/orders", "post", 422, shop.order(token, key="k3", body={
            "store": "main", "mode": "dine_in", "lines": [{"product": "latte", "quantity": 1}]})),
        ("/api/v1/{appid}/orders/{order_id}", "get", 200, shop.get(token, created.json()["id"])),
        ("/api/v1/{appid}/orders/{order_id}", "get", 404, shop.get(token, "HC0")),
        ("/api/v1/{appid}/me/orders", "get", 200, shop.api.get(f"/api/v1/{APPID}/me/orders",
                                                               headers={"Authorization": f"Bearer {token}"})),
    ]
    for path, method, status, answer in replies:
        assert answer.status_code == status, (path, answer.text)
        content = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
        jsonschema.validate(answer.json(), {**content["schema"], "components": document["components"]})
