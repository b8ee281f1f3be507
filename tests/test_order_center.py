"""Alipay's order centre (ordering.order_center, plugins/ordering/order_center.py), on
SQLite and PostgreSQL, against the sandbox's alipay.merchant.order.sync:

- a paid order is synced once, as MERCHANT_PAID, with its link page; accepted and
  completed follow, without the link page; ready (unmapped) sends nothing; an order
  that moved on before its first sync is sent at its latest status at once;
- a refusal is kept (sync_refused, sync_error) and not sent again; Alipay busy: sent
  again on the next run; neither changes the order's status;
- without order_center nothing is sent;
- the job queue runs the sync (the mpforge_serve_tasks hook) with no request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import write_project
from serve_support import APPID, SECRET, ApiClient, Clock, Database
from test_ordering import Shop, open_shop, shop_spec

from builder.serve.alipay_client import AlipayClient
from builder.serve.app import create_app
from builder.serve.jobs import JobPolicy
from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import Faults, sandbox_user_id
from plugins.ordering import order_center as order_center_module
from plugins.ordering import orders
from plugins.ordering.order_center import sync_order_center
from plugins.ordering.orders import Status
from plugins.ordering.sandbox import CenterOrder, order_center, trades
from plugins.ordering.serve import TASKS

pytest_plugins = ["serve_fixtures"]  # database, postgres

CENTER = {"biz_type": "qr_food_order"}
FAST_JOBS = JobPolicy(first_delay=0, attempts=2, backoff=1, stale=timedelta(0), poll_seconds=0.2)


class CenterShop(Shop):
    def sync(self) -> int:
        api = self.served.app.state.api
        return sync_order_center(api.storage, api.clients, {APPID: api.merchants[APPID].sections})

    def paid_order(self, name: str = "ann") -> str:
        out_trade_no: str = self.order(self.served.login(name)).json()["id"]
        assert self.pay(out_trade_no)["notifyAnswer"] == "success"
        assert self.stored(out_trade_no).status == Status.PAID
        return out_trade_no

    def move(self, out_trade_no: str, *statuses: Status) -> None:
        for status in statuses:
            orders.transition(self.served.storage, self.stored(out_trade_no).id, status)

    def centre(self, out_trade_no: str) -> CenterOrder | None:
        return order_center(self.served.sandbox.state).get(APPID, out_trade_no)

    def client(self) -> AlipayClient:
        client: AlipayClient = self.served.app.state.api.clients[APPID]
        return client


def ext(call: dict[str, Any]) -> dict[str, str]:
    return {e["ext_key"]: e["ext_value"] for e in call["ext_info"]}


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         request: pytest.FixtureRequest) -> Iterator[CenterShop]:
    ordering = getattr(request, "param", {"order_center": CENTER})
    merchant = load_merchant(write_project(tmp_path / "shop", shop_spec(**ordering)))
    with open_shop(database, merchant, monkeypatch) as opened:
        yield CenterShop(opened.served, opened.live)


def counted(shop: CenterShop, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The out_biz_no of every order.sync call the shop's client makes from now on."""
    client, calls = shop.client(), []
    real = client.merchant_order_sync

    def spy(**fields: Any) -> Any:
        calls.append(fields["out_biz_no"])
        return real(**fields)

    monkeypatch.setattr(client, "merchant_order_sync", spy)
    return calls


def test_a_paid_order_is_synced_once_as_merchant_paid_with_its_link_page(shop: CenterShop) -> None:
    out_trade_no = shop.paid_order()
    assert shop.sync() == 1
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_PAID"]
    assert centre.link_page == f"pages/order/order?id={out_trade_no}"
    [call] = centre.calls
    trade = trades(shop.served.sandbox.state).get(APPID, out_trade_no)
    assert trade is not None and call["trade_no"] == trade.trade_no == centre.trade_no
    assert call["buyer_id"] == sandbox_user_id("ann") and "buyer_open_id" not in call
    assert (call["amount"], call["pay_amount"], call["discount_amount"]) == ("64.00", "64.00", "0.00")
    # 2 large hot lattes at 32.00, the price a JSON number as Alipay's FAQ asks
    assert call["item_order_list"] == [{"item_name": "拿铁", "item_id": "latte", "quantity": 2, "unit_price": 32.0}]
    assert ext(call) == {"merchant_biz_type": "qr_food_order", "merchant_order_status": "MERCHANT_PAID",
                         "tiny_app_id": APPID, "merchant_order_link_page": f"pages/order/order?id={out_trade_no}"}
    assert call["shop_info"] == {"merchant_shop_id": "main"}
    assert call["order_create_time"] == "2026-03-02 12:00:00" and call["order_pay_time"] == "2026-03-02 12:00:00"
    stored = shop.stored(out_trade_no)
    assert (stored.status, stored.synced_status, stored.sync_refused) == (Status.PAID, Status.PAID, None)
    assert shop.sync() == 0  # nothing new: not sent again
    centre = shop.centre(out_trade_no)
    assert centre is not None and len(centre.calls) == 1


def test_accepted_and_completed_follow_without_the_link_page(shop: CenterShop,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out_trade_no = shop.paid_order()
    assert shop.sync() == 1
    shop.move(out_trade_no, Status.ACCEPTED)
    assert shop.sync() == 1
    calls = counted(shop, monkeypatch)
    shop.move(out_trade_no, Status.READY)  # no order-centre status for ready by default
    assert shop.sync() == 0 and calls == []
    assert shop.stored(out_trade_no).synced_status == Status.READY  # up to date: not looked at again
    assert orders.to_sync(shop.served.storage, APPID, list(Status), 10) == []
    shop.move(out_trade_no, Status.COMPLETED)
    assert shop.sync() == 1 and calls == [out_trade_no]
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_PAID", "MERCHANT_CONFIRMED", "MERCHANT_FINISHED"]
    assert [ext(c).get("merchant_order_link_page") for c in centre.calls] == [
        f"pages/order/order?id={out_trade_no}", None, None]
    assert len({c["order_modified_time"] for c in centre.calls}) == 1  # the test clock stands still
    assert shop.stored(out_trade_no).status == Status.COMPLETED


def test_an_order_that_moved_on_before_its_first_sync_is_sent_at_its_latest_status(shop: CenterShop) -> None:
    out_trade_no = shop.paid_order()
    shop.move(out_trade_no, Status.ACCEPTED, Status.READY, Status.COMPLETED)
    assert shop.sync() == 1
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_FINISHED"]  # steps may be skipped
    assert centre.link_page == f"pages/order/order?id={out_trade_no}"


def test_an_unpaid_order_and_a_refund_are_not_synced_by_default(shop: CenterShop) -> None:
    unpaid = shop.order(shop.served.login("bob")).json()["id"]
    out_trade_no = shop.paid_order()
    shop.move(out_trade_no, Status.REFUNDED)
    assert shop.sync() == 0
    assert shop.centre(unpaid) is None and shop.centre(out_trade_no) is None


def test_a_refusal_is_kept_and_not_sent_again(shop: CenterShop, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    out_trade_no = shop.paid_order()
    # Something else already told the order centre the order is finished.
    order_center(shop.served.sandbox.state).sync(APPID, out_trade_no, {}, {
        "merchant_biz_type": "qr_food_order", "merchant_order_status": "MERCHANT_FINISHED"})
    calls = counted(shop, monkeypatch)
    with caplog.at_level(logging.WARNING, "plugins.ordering.order_center"):
        assert shop.sync() == 0
    assert "ORDER_ERROR_STATUS" in caplog.text and out_trade_no in caplog.text
    stored = shop.stored(out_trade_no)
    assert (stored.status, stored.synced_status, stored.sync_refused, stored.sync_error) == (
        Status.PAID, None, Status.PAID, "ORDER_ERROR_STATUS")
    assert shop.sync() == 0 and calls == [out_trade_no]  # not sent again
    shop.move(out_trade_no, Status.ACCEPTED)  # a new status is tried (and refused, as finished is later)
    assert shop.sync() == 0 and calls == [out_trade_no, out_trade_no]
    assert shop.stored(out_trade_no).status == Status.ACCEPTED


def test_a_sync_accepted_after_a_refusal_forgets_it(shop: CenterShop) -> None:
    out_trade_no = shop.paid_order()
    orders.record_sync(shop.served.storage, shop.stored(out_trade_no).id, Status.PAID, refused="NO_PERMISSOON")
    assert shop.sync() == 0  # refused while paid: not sent again
    shop.move(out_trade_no, Status.ACCEPTED)
    assert shop.sync() == 1
    stored = shop.stored(out_trade_no)
    assert (stored.synced_status, stored.sync_refused, stored.sync_error) == (Status.ACCEPTED, None, None)
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_CONFIRMED"]
    assert centre.link_page == f"pages/order/order?id={out_trade_no}"  # the first accepted sync carries it


def test_a_changed_link_page_is_refused(shop: CenterShop) -> None:
    out_trade_no = shop.paid_order()
    order_center(shop.served.sandbox.state).sync(APPID, out_trade_no, {}, {
        "merchant_biz_type": "qr_food_order", "merchant_order_status": "MERCHANT_PAID",
        "merchant_order_link_page": "pages/other/other"})
    shop.move(out_trade_no, Status.ACCEPTED)
    assert shop.sync() == 0  # our first sync sends our link page: Alipay keeps the first
    stored = shop.stored(out_trade_no)
    assert (stored.status, stored.sync_error) == (Status.ACCEPTED, "MERCHANT_LINK_EXIST")


def test_alipay_busy_leaves_the_order_for_the_next_run(shop: CenterShop) -> None:
    out_trade_no = shop.paid_order()
    shop.served.sandbox.state.faults = Faults(busy=True)
    assert shop.sync() == 0
    stored = shop.stored(out_trade_no)
    assert (stored.status, stored.synced_status, stored.sync_refused, stored.sync_error) == (
        Status.PAID, None, None, None)
    shop.served.sandbox.state.faults = Faults()
    assert shop.sync() == 1
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_PAID"]


def test_an_answer_that_does_not_verify_is_not_trusted(shop: CenterShop) -> None:
    """The sandbox took the sync but its answer was tampered with: nothing is kept, the
    next run sends it again, and Alipay refuses the repeat (ORDER_ERROR_STATUS), as it
    would after a lost answer. The known cost of not trusting an answer."""
    out_trade_no = shop.paid_order()
    shop.served.sandbox.state.faults = Faults(tamper=True)
    assert shop.sync() == 0
    assert shop.stored(out_trade_no).synced_status is None
    shop.served.sandbox.state.faults = Faults()
    assert shop.sync() == 0
    stored = shop.stored(out_trade_no)
    assert (stored.status, stored.synced_status, stored.sync_error) == (Status.PAID, None, "ORDER_ERROR_STATUS")
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_PAID"]


@pytest.mark.parametrize("shop", [{}], indirect=True)
def test_without_order_center_nothing_is_sent(shop: CenterShop, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counted(shop, monkeypatch)
    out_trade_no = shop.paid_order()
    assert shop.sync() == 0 and calls == [] and shop.centre(out_trade_no) is None


@pytest.mark.parametrize("shop", [{"order_center": {**CENTER, "statuses": {"ready": "MERCHENT_SERVICING",
                                                                           "accepted": None}}}], indirect=True)
def test_the_template_statuses_are_the_specs(shop: CenterShop) -> None:
    out_trade_no = shop.paid_order()
    shop.move(out_trade_no, Status.ACCEPTED)
    assert shop.sync() == 1  # accepted unmapped: still paid to the order centre
    shop.move(out_trade_no, Status.READY)
    assert shop.sync() == 1
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_PAID", "MERCHENT_SERVICING"]


def test_the_job_queue_runs_the_sync(shop: CenterShop, tmp_path: Path) -> None:
    """A serve process with its job worker syncs a paid order by itself: the sync is
    its periodic task (mpforge_serve_tasks), run at start-up."""
    assert [task.name for task in TASKS] == ["ordering.reconcile", "ordering.order_center"]
    out_trade_no = shop.paid_order()
    with ExitStack() as stack:
        app = create_app([load_merchant(tmp_path / "shop")], shop.served.database.url,
                         alipay=shop.served.sandbox.alipay, secret=SECRET, clock=Clock(), job_policy=FAST_JOBS)
        api = ApiClient(app)
        stack.callback(api.close)
        stack.callback(app.state.api.storage.dispose)
        stack.enter_context(api.lifespan())
        deadline = time.monotonic() + 20
        while shop.stored(out_trade_no).synced_status is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert shop.stored(out_trade_no).synced_status == Status.PAID
    centre = shop.centre(out_trade_no)
    assert centre is not None and centre.statuses == ["MERCHANT_PAID"]


@pytest.mark.parametrize("shop", [{"order_center": {**CENTER, "statuses": {"paid": None}}}], indirect=True)
def test_orders_that_show_nothing_do_not_hold_up_the_others(shop: CenterShop,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`paid: null`: a paid order shows nothing in the order centre; with a batch of one
    it must not take every run's place while an accepted order waits behind it."""
    monkeypatch.setattr(order_center_module, "BATCH", 1)
    waiting = shop.paid_order("ann")  # the oldest: it would head every batch
    accepted = shop.paid_order("bob")
    shop.move(accepted, Status.ACCEPTED)
    assert shop.sync() == 1
    centre = shop.centre(accepted)
    assert centre is not None and centre.statuses == ["MERCHANT_CONFIRMED"]
    assert shop.centre(waiting) is None
