"""A customer's own orders, for GET /api/v1/{appid}/me/data, and forgetting them, for
DELETE (the core's builder.serve.user_data calls both through the plugin's hooks).

What is shown is every order of the user, as the order pages show it and more: number,
status, store, mode and table, lines, amounts, times. Forgetting keeps the orders and
removes who placed them (orders.forget_user says why each order is kept).
"""

from __future__ import annotations

from typing import Any

from builder.serve.storage import AlipayUser, Storage

from . import orders
from .orders import Order


def _shown(order: Order) -> dict[str, Any]:
    return {"number": order.out_trade_no, "tradeNo": order.trade_no, "status": order.status.value,
            "store": order.store, "mode": order.mode, "table": order.table_no, "lines": order.lines,
            "subtotal": order.subtotal, "packagingFee": order.packaging_fee, "deliveryFee": order.delivery_fee,
            "total": order.total, "createdAt": order.created_at.isoformat(),
            "paidAt": order.paid_at.isoformat() if order.paid_at else None,
            "updatedAt": order.updated_at.isoformat()}


def user_data(storage: Storage, appid: str, user: AlipayUser) -> dict[str, Any]:
    """{"orders": every order of the user, newest first; amounts in fen}."""
    return {"orders": [_shown(order) for order in orders.users_orders(storage, appid, user, limit=None)]}


def forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    orders.forget_user(storage, appid, user)
