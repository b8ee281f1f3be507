"""The ordering plugin's limited stock and its unpaid orders, on SQLite and PostgreSQL,
against the sandbox:

- many customers at once for a product with little stock: exactly the stock is sold,
  everyone else is told it sold out, and every order created can be paid;
- an order that closes gives its units back, once;
- reconcile (alipay.trade.query, alipay.trade.close) closes an order not paid in time,
  marks paid one whose page was closed after paying, closes one whose trade Alipay never
  made, and lets a payment that beats the close win;
- the job queue runs reconcile (the mpforge_serve_tasks hook) with no request;
- the sandbox's trades honour timeout_express and answer alipay.trade.close as Alipay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import write_project
from serve_support import APPID, NOON, SECRET, ApiClient, Clock, Database
from test_ordering import Shop, open_shop, shop_spec

from builder.serve.alipay_errors import AlipayError, AlipayUnavailable
from builder.serve.app import create_app
from builder.serve.jobs import JobPolicy
from builder.serve.merchant import Merchant, load_merchant
from builder.serve.plugin_api import SandboxRefusal, SandboxState
from builder.serve.sandbox_state import Faults, sandbox_user_id
from builder.serve.storage import Storage
from plugins.ordering import MIGRATIONS, orders, stock
from plugins.ordering.sandbox import trade_close, trade_create, trade_query, trades
from plugins.ordering.serve import TASKS, products_gone, reconcile

pytest_plugins = ["serve_fixtures"]  # database, postgres

PAY_WITHIN = timedelta(minutes=15)  # ordering.pay_within_minutes' default
FAST_JOBS = JobPolicy(first_delay=0, attempts=2, backoff=1, stale=timedelta(0), poll_seconds=0.2)


def croissants(quantity: int = 1) -> dict[str, Any]:
    return {"store": "main", "mode": "dine_in", "lines": [{"product": "croissant", "quantity": quantity}]}


def stocked_merchant(folder: Path, units: int) -> Merchant:
    """The test shop, its croissant (9.50) limited to `units`, no minimum order."""
    spec = shop_spec(minimum=0)
    next(p for p in spec["catalogue"]["products"] if p["id"] == "croissant")["stock"] = units
    return load_merchant(write_project(folder, spec))


@dataclass
class StockShop(Shop):
    folder: Path  # the spec's

    def remaining(self) -> int:
        return orders.remaining_stock(self.served.storage, APPID)["croissant"]

    def reconcile(self) -> int:
        return reconcile(self.served.storage, self.served.app.state.api.clients, {APPID: PAY_WITHIN})

    def app(self, clock: Clock, stack: ExitStack) -> ApiClient:
        """Another serve process on the shop's database, its job worker running."""
        app = create_app([load_merchant(self.folder)], self.served.database.url,
                         alipay=self.served.sandbox.alipay, secret=SECRET, clock=clock, job_policy=FAST_JOBS)
        api = ApiClient(app)
        stack.callback(api.close)
        stack.callback(app.state.api.storage.dispose)
        stack.enter_context(api.lifespan())
        return api


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         request: pytest.FixtureRequest) -> Iterator[StockShop]:
    merchant = stocked_merchant(tmp_path / "shop", getattr(request, "param", 10))
    with open_shop(database, merchant, monkeypatch) as opened:
        yield StockShop(opened.served, opened.live, tmp_path / "shop")


def test_concurrent_customers_buy_exactly_the_stock(shop: StockShop) -> None:
    """40 customers, each with a session of their own, order the last 10 croissants at the
    same moment: 10 orders, 30 answers sold_out naming it, no other answer; each order
    created is then paid."""
    tokens = [shop.served.login(f"guest-{n}") for n in range(40)]

    def order(token: str) -> httpx.Response:
        return httpx.post(f"{shop.live.url}/api/v1/{APPID}/orders", json=croissants(), timeout=60,
                          headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "tap-1"})

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(order, tokens))
    assert sorted({a.status_code for a in answers}) == [201, 409], [a.text for a in answers if a.status_code >= 500]
    created = [a.json() for a in answers if a.status_code == 201]
    refused = [a.json()["error"] for a in answers if a.status_code == 409]
    assert (len(created), len(refused)) == (10, 30)
    assert {(e["code"], json.dumps(e["fields"], ensure_ascii=False)) for e in refused} == {
        ("sold_out", '[{"location": "lines.0.product", "message": "\'可颂\' is sold out"}]')}
    assert shop.remaining() == 0
    with ThreadPoolExecutor(10) as pool:
        paid = list(pool.map(lambda o: shop.pay(o["id"]), created))
    assert [(p["notifyStatus"], p["notifyAnswer"]) for p in paid] == [(200, "success")] * 10
    with shop.served.storage.engine.connect() as conn:
        rows = conn.execute(orders.ORDERS.select()).all()
    assert sorted(row.status for row in rows) == ["paid"] * 10  # the refused stored nothing
    assert len({(row.user_kind, row.alipay_user) for row in rows}) == 10


@pytest.mark.parametrize("shop", [3], indirect=True)
def test_an_order_wanting_more_than_is_left_is_told_how_many_it_wanted(shop: StockShop) -> None:
    token = shop.served.login("ann")
    too_many = shop.order(token, body=croissants(4))
    assert too_many.status_code == 409
    assert too_many.json()["error"]["fields"] == [{"location": "lines.0.product",
                                                   "message": "'可颂' is sold out (fewer than 4 left)"}]
    # The same product on two lines counts once, with both quantities.
    two_lines = shop.order(token, key="order-2", body={**croissants(2), "lines": [
        {"product": "croissant", "quantity": 2}, {"product": "latte", "quantity": 1, "choices": {"temp": ["hot"]}},
        {"product": "croissant", "quantity": 2}]})
    assert two_lines.status_code == 409 and two_lines.json()["error"]["fields"][0]["location"] == "lines.0.product"
    assert shop.order(token, key="order-3", body=croissants(3)).status_code == 201
    assert shop.remaining() == 0


@pytest.mark.parametrize("shop", [2], indirect=True)
def test_a_closed_order_gives_its_stock_back_once(shop: StockShop) -> None:
    token = shop.served.login("ann")
    first = shop.order(token, body=croissants(2)).json()
    assert shop.order(token, key="order-2", body=croissants(1)).json()["error"]["code"] == "sold_out"
    stored = shop.stored(first["id"])
    closed, changed = orders.transition(shop.served.storage, stored.id, orders.Status.CLOSED)
    assert changed and closed.status == orders.Status.CLOSED and shop.remaining() == 2
    # Again (a second reconciler, a TRADE_CLOSED notification): nothing more comes back.
    assert orders.transition(shop.served.storage, stored.id, orders.Status.CLOSED)[1] is False
    with shop.served.storage.engine.begin() as conn:
        assert stock.release(conn, APPID, stored.id) == {}
    assert shop.remaining() == 2
    assert shop.order(token, key="order-3", body=croissants(2)).status_code == 201
    assert shop.remaining() == 0


@pytest.mark.parametrize("shop", [1], indirect=True)
def test_a_trade_alipay_refuses_closes_the_order_and_gives_its_stock_back(shop: StockShop,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client = shop.served.app.state.api.clients[APPID]

    def refuse(**_: Any) -> str:
        raise AlipayError("alipay.trade.create", "40004", "ACQ.ACCESS_FORBIDDEN", "Business Failed", "产品未签约")

    monkeypatch.setattr(client, "trade_create", refuse)
    refused = shop.order(shop.served.login("ann"), body=croissants())
    assert (refused.status_code, refused.json()["error"]["alipaySubCode"]) == (502, "ACQ.ACCESS_FORBIDDEN")
    assert shop.remaining() == 1


@pytest.mark.parametrize("shop", [5], indirect=True)
def test_reconcile_closes_an_order_not_paid_in_time(shop: StockShop) -> None:
    token = shop.served.login("ann")
    old = shop.order(token, body=croissants(2)).json()
    trade = trades(shop.served.sandbox.state).get(APPID, old["id"])
    assert trade is not None and '"timeout_express": "15m"' in trade.request  # Alipay closes its side too
    shop.served.clock.now = NOON + timedelta(minutes=10)
    young = shop.order(token, key="order-2", body=croissants(1)).json()
    assert shop.reconcile() == 0 and shop.remaining() == 2  # both still have time to pay
    shop.served.clock.now = NOON + PAY_WITHIN + timedelta(seconds=1)
    assert shop.reconcile() == 1
    assert shop.stored(old["id"]).status == orders.Status.CLOSED and shop.remaining() == 4
    assert shop.stored(young["id"]).status == orders.Status.CREATED
    closed = trades(shop.served.sandbox.state).get(APPID, old["id"])
    assert closed is not None and closed.status == "TRADE_CLOSED"  # alipay.trade.close
    late = httpx.post(f"http://{shop.served.sandbox.server.host}/sandbox/pay", timeout=30,
                      json={"appId": APPID, "outTradeNo": old["id"]})
    assert late.status_code == 409  # the buyer can no longer pay it
    assert shop.reconcile() == 0 and shop.remaining() == 4  # closed once


def test_reconcile_finds_paid_an_order_whose_page_was_closed(shop: StockShop) -> None:
    """The buyer paid, the page was closed and the notification was lost: reconcile asks
    Alipay and marks it paid; its units stay sold."""
    order = shop.order(shop.served.login("ann"), body=croissants(2)).json()
    assert shop.pay(order["id"], notify=False)["notifyAnswer"] is None
    shop.served.clock.now = NOON + PAY_WITHIN + timedelta(minutes=1)
    assert shop.reconcile() == 1
    assert shop.stored(order["id"]).status == orders.Status.PAID and shop.remaining() == 8


def test_reconcile_closes_an_order_whose_trade_alipay_never_made(shop: StockShop) -> None:
    token = shop.served.login("ann")
    shop.served.sandbox.state.faults = Faults(busy=True)
    assert shop.order(token, body=croissants(3)).status_code == 503  # stored, no trade; the client gave up
    shop.served.sandbox.state.faults = Faults()
    assert shop.remaining() == 7
    shop.served.clock.now = NOON + PAY_WITHIN + timedelta(minutes=1)
    assert shop.reconcile() == 1  # ACQ.TRADE_NOT_EXIST: closed
    [stored] = orders.users_orders(shop.served.storage, APPID, orders.AlipayUser("user_id", sandbox_user_id("ann")))
    assert stored.status == orders.Status.CLOSED and shop.remaining() == 10


def test_a_payment_just_before_the_close_wins(shop: StockShop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The buyer pays between reconcile's trade.query (WAIT_BUYER_PAY) and its trade.close:
    Alipay refuses the close, reconcile asks again and marks the order paid."""
    order = shop.order(shop.served.login("ann"), body=croissants()).json()
    client = shop.served.app.state.api.clients[APPID]
    close = client.trade_close

    def pay_then_close(out_trade_no: str) -> None:
        shop.pay(out_trade_no, notify=False)
        close(out_trade_no)

    monkeypatch.setattr(client, "trade_close", pay_then_close)
    shop.served.clock.now = NOON + PAY_WITHIN + timedelta(minutes=1)
    assert shop.reconcile() == 1
    assert shop.stored(order["id"]).status == orders.Status.PAID and shop.remaining() == 9


def test_the_job_queue_runs_reconcile(shop: StockShop) -> None:
    """A serve process starting after the time to pay has passed settles the order by
    itself: reconcile is its periodic task (mpforge_serve_tasks), run at start-up."""
    assert [task.name for task in TASKS][0] == "ordering.reconcile"
    assert [t.name for t in shop.served.app.state.api.jobs.tasks][0] == "mpforge.task.ordering.reconcile"
    order = shop.order(shop.served.login("ann"), body=croissants(2)).json()
    later = Clock()
    later.now = NOON + PAY_WITHIN + timedelta(minutes=1)
    with ExitStack() as stack:
        shop.app(later, stack)
        deadline = time.monotonic() + 20
        while shop.stored(order["id"]).status == orders.Status.CREATED and time.monotonic() < deadline:
            time.sleep(0.1)
    assert shop.stored(order["id"]).status == orders.Status.CLOSED and shop.remaining() == 10


@pytest.mark.parametrize("shop", [2], indirect=True)
def test_the_content_shows_a_product_sold_out_while_its_stock_is_gone(shop: StockShop) -> None:
    def sold_out() -> tuple[bool, str]:
        answer = shop.api.get(f"/api/v1/{APPID}/content")
        croissant = next(p for p in answer.json()["products"] if p["id"] == "croissant")
        return croissant["soldOut"], answer.headers["etag"]

    available, etag = sold_out()
    assert available is False
    order = shop.order(shop.served.login("ann"), body=croissants(2)).json()
    gone, gone_etag = sold_out()
    assert gone is True and gone_etag != etag  # a client's cached copy is out of date
    orders.transition(shop.served.storage, shop.stored(order["id"]).id, orders.Status.CLOSED)
    assert sold_out() == (False, etag)


def test_a_product_with_no_stock_in_the_spec_is_sold_out_before_anyone_orders(database: Database,
                                                                              tmp_path: Path) -> None:
    merchant = stocked_merchant(tmp_path / "shop", 0)
    storage = Storage(database.url)
    try:
        storage.migrate([MIGRATIONS])
        assert products_gone(storage, merchant.appid, merchant.products) == ["croissant"]
        plain = load_merchant(write_project(tmp_path / "plain", shop_spec()))
        assert products_gone(storage, plain.appid, plain.products) == []
    finally:
        storage.dispose()


# --- the sandbox's trades: timeout_express and alipay.trade.close ---------------------------

def test_the_sandbox_closes_a_trade_at_its_timeout_and_answers_close_as_alipay() -> None:
    now = datetime(2026, 3, 2, 12, 0)
    state = SandboxState(clock=lambda: now)

    def call(method: Any, **biz: str) -> dict[str, str]:
        answer: dict[str, str] = method(state, APPID, {"biz_content": json.dumps(biz)})
        return answer

    def refusal(method: Any, **biz: str) -> str:
        with pytest.raises(SandboxRefusal) as info:
            call(method, **biz)
        return info.value.sub_code

    trade = {"total_amount": "9.50", "subject": "x", "buyer_id": "2088000000000001"}
    call(trade_create, out_trade_no="T1", timeout_express="15m", **trade)
    call(trade_create, out_trade_no="T2", timeout_express="15m", **trade)
    call(trade_create, out_trade_no="T3", **trade)
    assert refusal(trade_create, out_trade_no="T4", timeout_express="16d", **trade) == "ACQ.INVALID_PARAMETER"
    assert refusal(trade_create, out_trade_no="T4", timeout_express="1.5h", **trade) == "ACQ.INVALID_PARAMETER"
    assert call(trade_close, out_trade_no="T2") == {"code": "10000", "msg": "Success", "trade_no": call(
        trade_query, out_trade_no="T2")["trade_no"], "out_trade_no": "T2"}
    assert call(trade_query, out_trade_no="T2")["trade_status"] == "TRADE_CLOSED"
    assert refusal(trade_close, out_trade_no="T2") == "ACQ.TRADE_STATUS_ERROR"  # closed already
    assert refusal(trade_close, out_trade_no="none") == "ACQ.TRADE_NOT_EXIST"
    assert call(trade_query, out_trade_no="T1")["trade_status"] == "WAIT_BUYER_PAY"
    now += timedelta(minutes=15)
    assert call(trade_query, out_trade_no="T1")["trade_status"] == "TRADE_CLOSED"  # timed out, unpaid
    assert call(trade_query, out_trade_no="T3")["trade_status"] == "WAIT_BUYER_PAY"  # no timeout asked
    paid = trades(state).pay(APPID, "T3", now)
    assert paid is not None and paid.status == "TRADE_SUCCESS"
    assert refusal(trade_close, out_trade_no="T3") == "ACQ.TRADE_STATUS_ERROR"  # paid


# --- an attempt that outlives its time to pay, and a payment that comes after a close ------

def test_a_key_whose_order_closed_unpaid_is_told_it_expired(shop: StockShop) -> None:
    """A retry of a key whose order reconcile closed gets order_expired (not the closed
    order as if just made); a new key orders again."""
    token = shop.served.login("ann")
    shop.served.sandbox.state.faults = Faults(busy=True)
    assert shop.order(token, body=croissants(2)).status_code == 503  # stored, no trade
    shop.served.sandbox.state.faults = Faults()
    shop.served.clock.now = NOON + PAY_WITHIN + timedelta(minutes=1)
    assert shop.reconcile() == 1 and shop.remaining() == 10
    again = shop.order(token, body=croissants(2))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "order_expired")
    assert shop.order(token, key="order-2", body=croissants(2)).status_code == 201


def test_no_trade_is_made_for_an_order_whose_time_to_pay_is_over(shop: StockShop) -> None:
    """The retry comes after the time to pay, before reconcile ran: the order is closed
    there and then, its units given back, and no trade is made."""
    token = shop.served.login("ann")
    shop.served.sandbox.state.faults = Faults(busy=True)
    first = shop.order(token, body=croissants(3))
    assert first.status_code == 503 and shop.remaining() == 7
    shop.served.sandbox.state.faults = Faults()
    shop.served.clock.now = NOON + PAY_WITHIN
    again = shop.order(token, body=croissants(3))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "order_expired")
    [stored] = orders.users_orders(shop.served.storage, APPID, orders.AlipayUser("user_id", sandbox_user_id("ann")))
    assert stored.status == orders.Status.CLOSED and shop.remaining() == 10
    assert trades(shop.served.sandbox.state).get(APPID, stored.out_trade_no) is None


def test_an_order_closed_while_its_trade_is_made_closes_the_trade(shop: StockShop,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconcile closes the order between the retry's look at it and Alipay's answer to
    trade.create: the new trade is closed at once and the client told order_expired, so
    nothing is left that the buyer could pay for a closed order."""
    token = shop.served.login("ann")
    shop.served.sandbox.state.faults = Faults(busy=True)
    assert shop.order(token, body=croissants(2)).status_code == 503
    shop.served.sandbox.state.faults = Faults()
    [stored] = orders.users_orders(shop.served.storage, APPID, orders.AlipayUser("user_id", sandbox_user_id("ann")))
    client = shop.served.app.state.api.clients[APPID]
    create = client.trade_create

    def closed_meanwhile(**fields: Any) -> str:
        orders.transition(shop.served.storage, stored.id, orders.Status.CLOSED)  # reconcile, in between
        return create(**fields)

    monkeypatch.setattr(client, "trade_create", closed_meanwhile)
    again = shop.order(token, body=croissants(2))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "order_expired")
    trade = trades(shop.served.sandbox.state).get(APPID, stored.out_trade_no)
    assert trade is not None and trade.status == "TRADE_CLOSED"  # alipay.trade.close
    assert shop.stored(stored.out_trade_no).status == orders.Status.CLOSED and shop.remaining() == 10


@pytest.mark.parametrize("shop", [2], indirect=True)
def test_a_verified_payment_of_a_closed_order_makes_it_paid_and_takes_its_units_again(shop: StockShop) -> None:
    """Alipay took the money for an order closed meanwhile (the buyer paid from the bill
    list as the close went out): the payment wins, the order is paid, on the board to
    make or refund, and takes its units again: the count goes below zero, so the unit
    owed is not handed out again when another order closes."""
    token = shop.served.login("ann")
    order = shop.order(token, body=croissants(2)).json()
    stored = shop.stored(order["id"])
    orders.transition(shop.served.storage, stored.id, orders.Status.CLOSED)
    assert shop.remaining() == 2
    bob = shop.order(shop.served.login("bob"), key="bob-1", body=croissants(1)).json()  # 1 left
    paid = shop.pay(order["id"])  # the sandbox's trade was never closed: the buyer pays it
    assert (paid["notifyStatus"], paid["notifyAnswer"]) == (200, "success")
    assert shop.stored(order["id"]).status == orders.Status.PAID and shop.remaining() == 0
    with shop.served.storage.engine.connect() as conn:
        assert conn.execute(stock.PRODUCT_STOCK.select()).one().remaining == -1  # one unit owed
    orders.transition(shop.served.storage, shop.stored(bob["id"]).id, orders.Status.CLOSED)
    assert shop.remaining() == 0  # bob's unit pays the debt: nothing to sell
    assert shop.order(shop.served.login("cy"), key="cy-1", body=croissants(1)).json()["error"]["code"] == "sold_out"


def test_a_trade_already_paid_when_created_again_settles_the_order(shop: StockShop,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """trade.create got through but its answer was lost, and the buyer paid the trade
    (from the bill list): the retry's create is refused ACQ.TRADE_HAS_SUCCESS, and the
    order is found paid, not closed."""
    token = shop.served.login("ann")
    client = shop.served.app.state.api.clients[APPID]
    create = client.trade_create

    def answer_lost(**fields: Any) -> str:
        create(**fields)
        shop.pay(fields["out_trade_no"], notify=False)
        raise AlipayError("alipay.trade.create", "40004", "ACQ.TRADE_HAS_SUCCESS", "Business Failed", "交易已被支付")

    monkeypatch.setattr(client, "trade_create", answer_lost)
    answer = shop.order(token, body=croissants())
    assert (answer.status_code, answer.json()["status"]) == (201, "paid")


def test_a_trade_already_paid_that_alipay_cannot_confirm_yet_is_retried(shop: StockShop,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, but trade.query does not answer either: 503 (retry the same key), not the
    order as if it were waiting for a payment that was made; the retry finds it paid."""
    token = shop.served.login("ann")
    client = shop.served.app.state.api.clients[APPID]
    create, query = client.trade_create, client.trade_query

    def answer_lost(**fields: Any) -> str:
        create(**fields)
        shop.pay(fields["out_trade_no"], notify=False)
        raise AlipayError("alipay.trade.create", "40004", "ACQ.TRADE_HAS_SUCCESS", "Business Failed", "交易已被支付")

    def busy(out_trade_no: str) -> Any:
        raise AlipayUnavailable("alipay.trade.query", "timed out")

    monkeypatch.setattr(client, "trade_create", answer_lost)
    monkeypatch.setattr(client, "trade_query", busy)
    answer = shop.order(token, body=croissants())
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "alipay_unavailable")
    monkeypatch.setattr(client, "trade_query", query)
    again = shop.order(token, body=croissants())
    assert (again.status_code, again.json()["status"]) == (201, "paid")


def test_a_change_of_the_specs_stock_adds_the_difference(shop: StockShop) -> None:
    """10 in the spec, 3 sold; the spec says 30 now (a restock of 20) and a process serves
    it: its next order finds 27 and leaves 26. Lowered to 5: 1 left (26 - 25)."""
    token = shop.served.login("ann")
    assert shop.order(token, body=croissants(3)).status_code == 201
    stocked_merchant(shop.folder, 30)  # the spec, edited
    assert orders.remaining_stock(shop.served.storage, APPID, {"croissant": 30}) == {"croissant": 27}
    with ExitStack() as stack:
        restocked = shop.app(shop.served.clock, stack)
        answer = restocked.post(f"/api/v1/{APPID}/orders", json=croissants(1),
                                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "order-2"})
        assert answer.status_code == 201, answer.text
    assert shop.remaining() == 26
    assert orders.remaining_stock(shop.served.storage, APPID, {"croissant": 5}) == {"croissant": 1}
    assert orders.remaining_stock(shop.served.storage, APPID, {"croissant": 1}) == {"croissant": 0}
