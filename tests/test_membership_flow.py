"""harbour-coffee's whole membership flow in `mpforge dev`'s preview, in Chromium, against
the dev back end and its sandbox: the parts of issue 18 (the card routes, the stamps and
the till, points, subscriptions, the mini-program's blocks and the preview's fakes) run
together.

The member page: 领取会员卡 → the 会员私域插件's claim form (the preview's prompt, which
the sandbox takes) → the card shows the member's level, points and card number; the
subscription dialog the card's opening asks; 扫码集点 with the till's current code (dev
reads it with the staff token in its environment) → one stamp; the same code again →
这个码已经用过了; the points rewards stay out of reach with the stamp's few points (the back
end refuses one sent anyway). The coupon page's members' coupon: refused before the card with
words that say why, claimed after it, and the coupon moment's subscription dialog.

Each step's screenshot is kept under the test's tmp_path, in shots/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import DevProcess, copy_sample, shown_text, wait_until

APPID = "2021004123456789"
MEMBER = "pages/member/member"
COUPONS = "pages/coupons/coupons"


def test_the_member_claims_the_card_stamps_once_and_a_replay_is_refused(tmp_path: Path, page: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MPFORGE_PUBLIC_URL", raising=False)
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", "staff-token-of-the-membership-flow-test-0123456789")
    shots = tmp_path / "shots"  # each step, to look at
    shots.mkdir()
    dev = DevProcess(copy_sample("harbour-coffee", tmp_path / "project"), tmp_path / "out")
    dialogs: list[tuple[str, str, str]] = []  # (type, message, default value)
    answers: dict[str, str] = {}  # a prompt's answer by what its message starts with

    def on_dialog(dialog: Any) -> None:
        dialogs.append((dialog.type, dialog.message, dialog.default_value))
        if dialog.type == "prompt":
            typed = next((v for k, v in answers.items() if dialog.message.startswith(k)), dialog.default_value)
            dialog.accept(typed)
        else:
            dialog.accept()

    def log_text() -> str:
        text: str = page.locator("#mpf-log").inner_text()
        return text

    def until(predicate: Any, timeout: float, what: str) -> None:
        """wait_until, failing with the preview's log (what the page did)."""
        try:
            wait_until(predicate, timeout, what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{log_text()}") from None

    try:
        wait_until(lambda: any("back end" in line for line in dev.lines), 40, "the back end's start (or its note)")
        page.on("dialog", on_dialog)
        page.set_viewport_size({"width": 1200, "height": 1000})
        page.goto(dev.url + "#" + MEMBER)
        page.locator(f"body[data-page='{MEMBER}']").wait_for()
        until(lambda: "领取会员卡" in shown_text(page), 20, "the claim button")
        page.screenshot(path=str(shots / "1-not-a-member.png"), full_page=True)

        # The members' coupon, before the card: the back end refuses it and the page says why.
        page.goto(dev.url + "#" + COUPONS)
        page.locator(f"body[data-page='{COUPONS}']").wait_for()
        page.locator("[data-mp-on-tap='onClaimCoupon'][data-mp-dataset*='latte-85']").click()
        until(lambda: "claims → 403" in log_text(), 20, "the members' coupon refused")
        until(lambda: "my.showToast: 开通会员卡后才能领取" in log_text(), 20, "the refusal's words")
        page.screenshot(path=str(shots / "1b-members-coupon-refused.png"))
        page.goto(dev.url + "#" + MEMBER)
        page.locator(f"body[data-page='{MEMBER}']").wait_for()
        until(lambda: "领取会员卡" in shown_text(page), 20, "the member page again")

        # The card template was made by the back end's start-up run of membership.card_setup
        # (a customer's request never makes it), well before this tap.
        page.locator("[data-mp-on-tap='onMemberCardClaim']").click()
        until(lambda: "NO." in shown_text(page), 30, "the member's card")
        text = shown_text(page)
        assert "领取会员卡" not in text and "银卡" in text and "再得 500 积分升级金卡" in text
        assert page.locator(".mf-member-points").inner_text() == "0"
        card_no = re.search(r"NO\. (\S+)", text)
        assert card_no and card_no.group(1), text
        assert [d for d in dialogs if d[0] == "prompt" and d[1].startswith("支付宝会员卡开卡")]
        # (the log is read to wait: Playwright answers a dialog only while a call of it runs)
        until(lambda: "requestSubscribeMessage TPL_HC_POINTS → accept" in log_text(), 20,
              "the subscription dialog after the card")
        assert [d for d in dialogs if d[0] == "confirm" and "TPL_HC_POINTS" in d[1]]
        until(lambda: "membership/subscriptions → 204" in log_text(), 20,
              "the acceptance sent to the back end")
        page.screenshot(path=str(shots / "2-member-card.png"), full_page=True)

        page.locator("[data-mp-on-tap='onStampScan']").click()
        until(lambda: "1/8" in shown_text(page), 30, "one stamp")
        scanned = [d for d in dialogs if d[0] == "prompt" and d[1].startswith("my.scan")]
        code = scanned[-1][2]
        assert code.startswith("mpforge-stamp:v1."), scanned
        assert page.locator(".mf-stamp-on").count() == 1
        page.screenshot(path=str(shots / "3-one-stamp.png"), full_page=True)

        answers["my.scan"] = code  # the same code again: the replay
        page.locator("[data-mp-on-tap='onStampScan']").click()
        until(lambda: "这个码已经用过了" in page.locator("body").inner_text(), 30, "the refusal")
        page.screenshot(path=str(shots / "4-code-used.png"), full_page=True)
        assert page.locator(".mf-stamp-on").count() == 1

        # per_stamp 5 points: too few for any reward (150 and 300); its buttons are off.
        until(lambda: "我的积分 5" in shown_text(page), 20, "the points after the stamp")
        assert page.locator(".mf-member-points").inner_text() == "5"  # the card's points follow the stamp
        assert page.locator(".mf-reward-go[disabled]").count() == 2
        assert "开通会员卡后可用积分兑换" not in shown_text(page)
        # The back end agrees: a redemption sent anyway (as the page would, with its session) is 409.
        refused = page.evaluate("""async (appid) => {
          const session = JSON.parse(localStorage.getItem('mpforge:' + appid + ':mpforge.session'));
          const answer = await fetch('/__mpforge/backend/api/v1/' + appid + '/membership/rewards/points-croissant', {
            method: 'POST', headers: {'X-Mpforge-Runtime': '1', 'Content-Type': 'application/json',
              'Authorization': 'Bearer ' + session.token, 'Idempotency-Key': 'flow-test-1'}, body: '{}'});
          return [answer.status, await answer.json()];
        }""", APPID)
        assert refused[0] == 409 and refused[1]["error"]["code"] == "not_enough_points", refused
        page.locator(".mf-rewards").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "5-rewards.png"))

        # The members' coupon, with the card: claimed, and the coupon moment's subscription asked.
        page.goto(dev.url + "#" + COUPONS)
        page.locator(f"body[data-page='{COUPONS}']").wait_for()
        page.locator("[data-mp-on-tap='onClaimCoupon'][data-mp-dataset*='latte-85']").click()
        until(lambda: "latte-85/claims → 201" in log_text(), 20, "the members' coupon claimed")
        until(lambda: "requestSubscribeMessage TPL_HC_COUPON_EXPIRE → accept" in log_text(), 20,
              "the subscription dialog after the claim")
        assert [d for d in dialogs if d[0] == "confirm" and "TPL_HC_COUPON_EXPIRE" in d[1]]
        assert "领取成功" in log_text()
        page.screenshot(path=str(shots / "6-members-coupon-claimed.png"))
    finally:
        assert dev.stop() == 0, "".join(dev.lines)
