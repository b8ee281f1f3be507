"""What happened to a customer in one plugin that other plugins may act on: an order
paid or ready, a coupon claimed. The plugin where it happened announces it
(`Api.announce`, `TaskContext.announce`) after its own change is stored; every plugin's
`mpforge_serve_event` hears it (e.g. the membership plugin credits points for a paid
order, and sends "your order is ready").

Delivery is at most once per announcement and never fails the announcer: a listener's
exception is logged with the plugin's name (a payment must not be refused because
points could not be credited). A listener must be idempotent by (appid, kind, ref), as
an order can be announced paid twice (Alipay notifies again; reconcile finds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from builder.serve.storage import AlipayUser

# The kinds the first-party plugins announce; a plugin may announce its own.
ORDER_PAID = "order_paid"  # ref: the order number; amount_fen: what the customer paid
ORDER_READY = "order_ready"  # ref: the order number; data: store
ORDER_REFUNDED = "order_refunded"  # ref: the order number; amount_fen: refunded
COUPON_CLAIMED = "coupon_claimed"  # ref: the claim's out_biz_no; data: coupon


@dataclass(frozen=True)
class BusinessEvent:
    """appid and user: whose; kind: what (above); ref: unique per kind within the app;
    at: when (the server's clock); amount_fen: money involved (0 if none); data: a few
    strings the listeners may show (e.g. {"store": "nanshan"})."""

    appid: str
    user: AlipayUser
    kind: str
    ref: str
    at: datetime
    amount_fen: int = 0
    data: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        return dict(self.data).get(key)
