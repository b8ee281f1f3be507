"""A reward coupon (audience reward) is given only for points or a full stamp card: the
claim route refuses it, while the membership plugin's points reward issues it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write_project
from serve_support import APPID, Database
from test_membership_card import me, member_spec, reward
from test_ordering import Shop, open_shop

from builder.serve.merchant import load_merchant

pytest_plugins = ["serve_fixtures"]  # database, postgres


@pytest.fixture
def shop(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    spec = member_spec()
    spec["coupon"]["coupons"][0]["audience"] = "reward"  # the points reward's coupon
    with open_shop(database, load_merchant(write_project(tmp_path / "shop", spec)), monkeypatch) as opened:
        yield opened


def test_a_reward_coupon_is_given_for_points_and_never_claimed_by_itself(shop: Shop) -> None:
    token = shop.served.login("ann")
    refused = shop.served.claim(token, "reward")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "reward_only")
    assert shop.served.taken("reward") == 0  # nothing reserved
    shop.pay(shop.order(token).json()["id"])  # 2 points a yuan: 128
    redeemed = reward(shop, token, "k-1")
    assert redeemed.status_code == 200, redeemed.text
    assert (redeemed.json()["claim"]["result"], redeemed.json()["points"]) == ("CLAIMED", 78)
    assert me(shop, token)["points"] == 78
    assert shop.served.claim(token, "reward", key="again").json()["error"]["code"] == "reward_only"
    held = shop.api.get(f"/api/v1/{APPID}/me/claims", headers={"Authorization": f"Bearer {token}"}).json()
    assert [c["couponId"] for c in held["claims"]] == ["reward"]  # the one the points paid for
