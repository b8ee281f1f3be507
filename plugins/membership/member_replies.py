"""The JSON of the member card's and points' routes (camelCase on the wire): the `me`
answer every one of them gives, and the claim and reward bodies."""

from __future__ import annotations

from pydantic import Field

from builder.serve.api_models import ClaimReply, Reply, Request


class LevelReply(Reply):
    id: str
    name: str


class NextLevelReply(Reply):
    id: str
    name: str
    min_points: int = Field(description="points earned in all that reach it")


class RewardReply(Reply):
    coupon: str
    title: str
    points: int
    affordable: bool = Field(description="the customer has that many points now")


class MeReply(Reply):
    """The customer's membership as it stands."""

    member: bool = Field(description="the customer holds the Alipay member card")
    card_no: str | None = Field(description="the card's Alipay number (biz_card_no)")
    level: LevelReply
    next_level: NextLevelReply | None
    points: int = Field(description="points to spend now")
    earned: int = Field(description="points earned in all (what the level follows)")
    stamps: int
    stamps_per_card: int | None
    cards_filled: int
    apply_card_url: str | None = Field(description="the claim link the mini-program opens with the member plugin "
                                                   "(when not a member and the card is made)")
    rewards: list[RewardReply]
    followed: bool = Field(description="the follow's points were given")


class CardRequest(Request):
    auth_code: str = Field(min_length=1, max_length=256, description="the claim page's auth_code (scope auth_ecard)")
    request_id: str = Field(min_length=1, max_length=128, description="the claim page's request_id")
    template_id: str | None = Field(None, min_length=1, max_length=64,
                                    description="the claim page's template_id; must be this app's card if sent")


class RewardClaimReply(Reply):
    points: int = Field(description="the customer's points after the reward")
    claim: ClaimReply
