"""The membership plugin's member card and points against the sandbox, on SQLite and
PostgreSQL: the card template made by the job queue's task, once (concurrent runs and a
later tick call formtemplate.set and activateurl.apply once; a failed run resumes), a
customer's request never making it, a card opened end to end (the claim form in the
sandbox -> authCode -> POST membership/card), points earned by a paid order (once), the
card's points and level pushed to Alipay, points spent on a reward coupon, the follow's
points, and a members-only coupon."""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from helpers import write_project
from serve_support import APPID, Database, coupon
from sqlalchemy import MetaData, select
from test_order_board import STAFF_TOKEN, Board
from test_ordering import Shop, open_shop, shop_spec

from builder.serve import claims
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable
from builder.serve.business_events import ORDER_PAID, ORDER_REFUNDED, BusinessEvent
from builder.serve.claims import RetryPolicy
from builder.serve.merchant import load_merchant
from builder.serve.sandbox_state import Faults, sandbox_user_id
from builder.serve.storage import METADATA, AlipayUser, Storage
from builder.serve.storage import Status as ClaimStatus
from plugins.membership import MIGRATIONS, points
from plugins.membership.card_api import SETUP_LEASE, card_setup_task, card_spec, card_sync_task, set_up_card
from plugins.membership.points import reward_claim_key, reward_ref, rewards_task
from plugins.membership.sandbox_card import cards
from plugins.membership.tables import CARDS, CUSTOMERS, LEDGER
from plugins.membership.tables import METADATA as MEMBERSHIP_METADATA

pytest_plugins = ["serve_fixtures"]  # database, postgres

MOBILE = "13800138000"
MEMBERSHIP = {
    "card": {"title": "港湾咖啡会员卡", "logo": "banner.png", "background": "banner.png",
             "plugin_provider": "2021000000000009"},
    "levels": [{"id": "silver", "name": "银卡", "min_points": 0}, {"id": "gold", "name": "金卡", "min_points": 100}],
    "points": {"per_yuan": 2, "per_follow": 10, "rewards": [{"coupon": "reward", "points": 50}]},
}


def member_spec() -> dict[str, Any]:
    spec = shop_spec()
    spec["coupon"] = {"coupons": [coupon("reward"), coupon("members", audience="members")]}
    spec["membership"] = copy.deepcopy(MEMBERSHIP)
    return spec


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    with open_shop(database, load_merchant(write_project(tmp_path / "shop", member_spec())), monkeypatch) as opened:
        yield opened


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(shop: Shop, token: str) -> dict[str, Any]:
    answer = shop.api.get(f"/api/v1/{APPID}/membership/me", headers=auth(token))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def fill_form(shop: Shop, template_id: str, login: str) -> dict[str, Any]:
    """The user fills the claim form (the sandbox's stand-in for Alipay's claim page)."""
    answer = httpx.post(f"http://{shop.served.sandbox.server.host}/sandbox/card/apply", timeout=30,
                        json={"appId": APPID, "templateId": template_id, "login": login, "mobile": MOBILE})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def open_card(shop: Shop, token: str, claim: dict[str, Any]) -> httpx.Response:
    return shop.api.post(f"/api/v1/{APPID}/membership/card", headers=auth(token), json=claim)


def set_up(shop: Shop) -> None:
    """One tick of the job queue's card setup task."""
    card_setup_task(shop.served.app.state.api.context)


def become_member(shop: Shop, login: str) -> tuple[str, dict[str, Any]]:
    set_up(shop)
    token = shop.served.login(login)
    assert me(shop, token)["applyCardUrl"]
    template_id = cards(shop.served.sandbox.state).templates(APPID)[0].template_id
    opened = open_card(shop, token, fill_form(shop, template_id, login))
    assert opened.status_code == 200, opened.text
    return token, opened.json()


def customer_row(shop: Shop, login: str) -> dict[str, Any]:
    user_id = sandbox_user_id(login)
    return next(r for r in shop.served.rows(CUSTOMERS) if r["alipay_user"] == user_id)


def reward(shop: Shop, token: str, key: str, coupon_id: str = "reward") -> httpx.Response:
    return shop.api.post(f"/api/v1/{APPID}/membership/rewards/{coupon_id}",
                         headers={**auth(token), "Idempotency-Key": key})


def test_the_card_is_made_by_the_task_once_and_opened_from_the_claim_form(shop: Shop) -> None:
    token = shop.served.login("ann")
    sandbox = cards(shop.served.sandbox.state)
    # Before the task: a customer's requests read the table only, and Alipay is not asked.
    before = me(shop, token)
    assert before["applyCardUrl"] is None and sandbox.templates(APPID) == []
    early = open_card(shop, token, {"authCode": "sandbox-user-ann", "requestId": "r1"})
    assert (early.status_code, early.json()["error"]["code"]) == (409, "card_not_ready")
    assert sandbox.templates(APPID) == []

    set_up(shop)
    first = me(shop, token)
    assert (first["member"], first["points"], first["level"], first["nextLevel"]) == (
        False, 0, {"id": "silver", "name": "银卡"}, {"id": "gold", "name": "金卡", "minPoints": 100})
    [template] = sandbox.templates(APPID)
    assert template.levels == ("silver", "gold") and template.form == ("OPEN_FORM_FIELD_MOBILE",)
    assert (template.form_sets, template.url_applies) == (1, 1)
    assert first["applyCardUrl"] == template.apply_card_url and template.template_id in first["applyCardUrl"]
    assert me(shop, shop.served.login("bob"))["applyCardUrl"] == first["applyCardUrl"]

    # A changed design modifies the same template; the form and the claim link stay.
    api = shop.served.app.state.api
    merchant = api.merchants[APPID]
    section = merchant.sections["membership"]
    renamed = card_spec(APPID, merchant.assets_dir, section.model_copy(
        update={"card": section.card.model_copy(update={"title": "港湾会员"})}))
    assert set_up_card(api.storage, api.clients[APPID], APPID, renamed)
    [modified] = sandbox.templates(APPID)
    assert '"card_show_name": "港湾会员"' in modified.design
    assert (modified.template_id, modified.apply_card_url, modified.form_sets, modified.url_applies) == (
        template.template_id, template.apply_card_url, 1, 1)
    assert not set_up_card(api.storage, api.clients[APPID], APPID, renamed)  # unchanged: nothing to do

    claim = fill_form(shop, template.template_id, "ann")
    opened = open_card(shop, token, claim)
    assert opened.status_code == 200, opened.text
    answer = opened.json()
    assert answer["member"] is True and answer["cardNo"] and answer["applyCardUrl"] is None
    card = sandbox.card(answer["cardNo"])
    assert card is not None and (card.user_id, card.level, card.point) == (sandbox_user_id("ann"), "silver", "0")
    assert customer_row(shop, "ann")["mobile_sha256"] == hashlib.sha256(MOBILE.encode()).hexdigest()
    # Opening again answers the same, and Alipay opens nothing new.
    assert open_card(shop, token, claim).json() == answer
    assert me(shop, token) == answer
    # Another user cannot open a card with ann's claim.
    stolen = open_card(shop, shop.served.login("bob"), claim)
    assert (stolen.status_code, stolen.json()["error"]["code"]) == (403, "wrong_user")


def test_concurrent_runs_and_a_later_tick_set_the_card_up_once(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four runs at once (a run outlasting its tick; processes on PostgreSQL take the
    same lease), then the next tick: one template, its form and claim link set once."""
    api = shop.served.app.state.api
    client = api.clients[APPID]
    calls: list[str] = []
    upload, create = client.upload_image, client.card_template_create

    def slow_upload(*args: Any) -> str:
        calls.append("upload")
        time.sleep(0.2)  # the runs overlap
        return upload(*args)

    def counted_create(*args: Any) -> str:
        calls.append("create")
        return create(*args)

    monkeypatch.setattr(client, "upload_image", slow_upload)
    monkeypatch.setattr(client, "card_template_create", counted_create)
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        set_up(shop)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(run) for _ in range(4)]:
            future.result()
    set_up(shop)  # the next tick
    [template] = cards(shop.served.sandbox.state).templates(APPID)
    assert (template.form_sets, template.url_applies) == (1, 1)
    assert sorted(calls) == ["create", "upload", "upload"]
    [row] = shop.served.rows(CARDS)
    assert (row["template_id"], row["apply_card_url"], row["setup_by"]) == (
        template.template_id, template.apply_card_url, None)


def test_a_failed_setup_resumes_at_its_step_and_a_dead_runs_lease_expires(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    api = shop.served.app.state.api
    client = api.clients[APPID]
    set_form = client.card_form_template_set

    def unavailable(*args: Any) -> None:
        raise AlipayUnavailable("alipay.marketing.card.formtemplate.set", "timeout")

    monkeypatch.setattr(client, "card_form_template_set", unavailable)
    set_up(shop)  # made the template, then Alipay did not answer: logged, left for the next tick
    [template] = cards(shop.served.sandbox.state).templates(APPID)
    assert (template.form_sets, template.url_applies) == (0, 0)
    assert me(shop, shop.served.login("ann"))["applyCardUrl"] is None

    # A run that dies holding the lease keeps others out until it expires.
    monkeypatch.setattr(client, "card_form_template_set", set_form)
    with api.storage.engine.begin() as conn:
        conn.execute(CARDS.update().values(setup_by="dead", setup_until=shop.served.clock() + SETUP_LEASE))
    set_up(shop)
    assert cards(shop.served.sandbox.state).templates(APPID)[0].form_sets == 0
    shop.served.clock.now += SETUP_LEASE
    set_up(shop)
    [resumed] = cards(shop.served.sandbox.state).templates(APPID)  # not made again
    assert (resumed.template_id, resumed.form_sets, resumed.url_applies) == (template.template_id, 1, 1)
    assert me(shop, shop.served.login("ann"))["applyCardUrl"] == resumed.apply_card_url


def test_the_sandboxs_card_open_refuses_what_alipay_refuses(shop: Shop) -> None:
    set_up(shop)
    template_id = cards(shop.served.sandbox.state).templates(APPID)[0].template_id
    client = shop.served.app.state.api.clients[APPID]
    ann, bob = client.oauth_token("sandbox-user-ann"), client.oauth_token("sandbox-user-bob")
    assert ann.user_id is not None
    dates = {"open_date": "2026-03-02 12:00:00", "valid_date": "2036-03-02 12:00:00"}

    def open_as(token: str, serial: str, level: str = "silver") -> str:
        return client.card_open(auth_token=token, out_serial_no=serial, template_id=template_id,
                                user_id=ann.user_id or "", card={"external_card_no": serial, **dates, "level": level,
                                                                 "point": "0"})

    def refusal(token: str, serial: str, level: str = "silver") -> str:
        with pytest.raises(AlipayError) as refused:
            open_as(token, serial, level)
        return refused.value.sub_code

    assert refusal(bob.access_token, "s1") == "isv.user-auth-fail"  # another user's token
    assert refusal(ann.access_token, "s1", "platinum") == "INVALID_PARAMETER"  # no such level in the template
    card_no = open_as(ann.access_token, "s1")
    assert open_as(ann.access_token, "s1") == card_no  # the same out_serial_no: the same card
    assert refusal(ann.access_token, "s2") == "CARD_ALREADY_EXIST"  # one card per user and template


def test_a_paid_order_earns_points_once_and_the_card_shows_the_new_level(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    token, member = become_member(shop, "ann")
    order = shop.order(token).json()
    assert shop.pay(order["id"])["notifyAnswer"] == "success"
    # 64.00 yuan x 2 points; announced again (a second notification, reconcile): once.
    api = shop.served.app.state.api
    api.announce(BusinessEvent(APPID, AlipayUser("user_id", sandbox_user_id("ann")), ORDER_PAID, order["id"],
                               shop.served.clock(), amount_fen=6400))
    shop.pay(order["id"])
    now = me(shop, token)
    assert (now["points"], now["earned"], now["level"]["id"], now["nextLevel"]) == (128, 128, "gold", None)
    assert [(r["reason"], r["delta"]) for r in shop.served.rows(LEDGER)] == [("order", 128)]

    sandbox = cards(shop.served.sandbox.state)
    card_sync_task(api.context)
    card = sandbox.card(member["cardNo"])
    assert card is not None and (card.point, card.level, card.updates) == ("128", "gold", 1)
    card_sync_task(api.context)  # nothing changed since: nothing pushed
    assert sandbox.card(member["cardNo"]) == card

    # The board's refund takes the order's points back in full: the 50 spent become owed.
    assert reward(shop, token, "spend-1").status_code == 200
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", STAFF_TOKEN)
    board = Board(shop)
    assert board.act(board.cookie(), order["id"], "refund").status_code == 200
    api.announce(BusinessEvent(APPID, AlipayUser("user_id", sandbox_user_id("ann")), ORDER_REFUNDED, order["id"],
                               shop.served.clock(), amount_fen=6400))  # announced twice: taken back once
    after = me(shop, token)
    assert (after["points"], after["earned"], after["level"]["id"]) == (-50, 0, "silver")
    assert [(r["reason"], r["delta"]) for r in shop.served.rows(LEDGER)] == [("order", 128), ("reward", -50),
                                                                             ("refund", -128)]
    assert reward(shop, token, "spend-2").status_code == 409  # owing, nothing more to spend
    card_sync_task(api.context)
    card = sandbox.card(member["cardNo"])
    assert card is not None and (card.point, card.level) == ("0", "silver")


def test_points_are_spent_on_a_reward_and_given_back_when_the_claim_is_refused(shop: Shop) -> None:
    poor = reward(shop, shop.served.login("cat"), "k-1")
    assert (poor.status_code, poor.json()["error"]["code"]) == (409, "not_enough_points")
    token = shop.served.login("ann")
    order = shop.order(token).json()
    shop.pay(order["id"])

    first = reward(shop, token, "k-1")
    assert first.status_code == 200, first.text
    assert (first.json()["points"], first.json()["claim"]["result"]) == (78, "CLAIMED")
    assert reward(shop, token, "k-1").json() == first.json()  # a replayed key: the same, nothing spent
    assert len(shop.served.vouchers("reward")) == 1
    # The coupon allows one per user: the claim is refused and the points come back.
    refused = reward(shop, token, "k-2")
    assert (refused.status_code, refused.json()["claim"]["result"], refused.json()["points"]) == (
        409, "LIMIT_REACHED", 78)
    assert reward(shop, token, "k-2").json() == refused.json()
    assert me(shop, token)["points"] == 78
    assert reward(shop, token, "k-3", "members").status_code == 404  # not a reward


def test_a_reward_claim_refused_later_gives_its_points_back_once(shop: Shop) -> None:
    token = shop.served.login("ann")
    shop.pay(shop.order(token).json()["id"])
    shop.served.sandbox.state.faults = Faults(busy=True)
    pending = reward(shop, token, "k-1")
    assert (pending.status_code, pending.json()["claim"]["result"], pending.json()["points"]) == (503, "PENDING", 78)
    # The job queue settles the claim later, and Alipay refuses it (no stock left by then).
    shop.served.sandbox.state.faults = Faults()
    shop.served.sandbox.state.add_activity("act-reward", stock=0)
    api = shop.served.app.state.api
    user = AlipayUser("user_id", sandbox_user_id("ann"))
    claim = api.storage.find_claim(APPID, user, reward_claim_key(reward_ref(user, "k-1")))
    # In a thread of its own: the session's Playwright browser may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        settled = pool.submit(anyio.run, claims.resume, api.storage, api.clients[APPID], claim, "reward", None,
                              RetryPolicy(1, (0,))).result()
    assert settled.status is ClaimStatus.FAILED
    rewards_task(api.context)
    rewards_task(api.context)  # twice: given back once
    assert me(shop, token)["points"] == 128
    assert [r["reason"] for r in shop.served.rows(LEDGER)] == ["order", "reward", "reward_back"]


def test_a_paid_orders_points_lost_with_its_announcement_are_credited_by_the_task(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    token = shop.served.login("ann")
    real, failures = points.earn, [RuntimeError("database is locked")]  # one transient failure

    def flaky(*args: Any) -> bool:
        if failures:
            raise failures.pop()
        return real(*args)

    monkeypatch.setattr(points, "earn", flaky)
    shop.pay(shop.order(token).json()["id"])
    assert me(shop, token)["points"] == 0  # the announcement's credit failed, the payment stands
    api = shop.served.app.state.api
    points.order_points_task(api.context)
    points.order_points_task(api.context)  # twice: credited once
    assert me(shop, token)["points"] == 128
    assert [r["reason"] for r in shop.served.rows(LEDGER)] == ["order"]


def test_the_follow_gives_points_once(shop: Shop) -> None:
    token = shop.served.login("ann")
    url = f"/api/v1/{APPID}/membership/follow-points"
    refused = shop.api.post(url, headers=auth(token))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_following")
    shop.served.sandbox.state.set_following(APPID, sandbox_user_id("ann"))
    first = shop.api.post(url, headers=auth(token)).json()
    assert (first["points"], first["followed"]) == (10, True)
    assert shop.api.post(url, headers=auth(token)).json() == first


def test_a_members_coupon_is_refused_to_a_non_member_and_issued_to_a_member(shop: Shop) -> None:
    stranger = shop.served.claim(shop.served.login("bob"), "members")
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "not_member")
    token, _ = become_member(shop, "ann")
    claimed = shop.served.claim(token, "members")
    assert (claimed.status_code, claimed.json()["result"]) == (201, "CLAIMED")


def test_the_tables_match_their_migration(database: Database) -> None:
    storage = Storage(database.url)
    try:
        storage.migrate([MIGRATIONS])
        both = MetaData()
        for table in [*METADATA.tables.values(), *MEMBERSHIP_METADATA.tables.values()]:
            table.to_metadata(both)
        with storage.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), both) == []
            assert conn.execute(select(CUSTOMERS)).all() == []
    finally:
        storage.dispose()
