"""Alipay's order centre (小程序订单中心): paid orders synchronised to the buyer's Alipay
order list with alipay.merchant.order.sync, when the spec asks (`ordering.order_center`).

Optional and off by default: Alipay accepts it only from an account with the 小程序订单中心
product signed and an industry order template (`biz_type`, the template's
merchant_biz_type), whose status names `statuses` gives for each order status.
Facts: docs/alipay-payment-facts.md 5 and 6.6.

`sync_order_center`, run every minute on the job queue (`TASKS` in serve.py), sends each
order whose status maps to an order-centre status later than the one Alipay last
accepted: the latest mapped status at or before the order's own along
paid > accepted > ready > completed (Alipay takes them only forward, each once, and
steps may be skipped: ORDER_ERROR_STATUS otherwise), or `refunded`'s own when the order
was refunded. The first accepted sync carries merchant_order_link_page (the order page,
`?id=` the order number): Alipay keeps the first one (MERCHANT_LINK_EXIST for another),
so later updates leave it out.

Outcomes, kept on the order (orders.record_sync) as the order's status when it was sent,
never touching that status: accepted -> synced_status; refused -> sync_refused and
sync_error (the sub_code), logged and not sent again while the order stays in that
status; no answer (AlipayUnavailable), or none that verifies -> nothing kept, the next
run sends it again (should Alipay have taken it unheard, the repeat is refused:
ORDER_ERROR_STATUS). A sync can neither block nor undo a payment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from builder.plugin_api import page_path
from builder.serve.alipay_client import AlipayClient, OrderItem
from builder.serve.alipay_errors import AlipayError, AlipayUnavailable, UnverifiedResponse
from builder.serve.plugin_api import TaskContext
from builder.serve.storage import Storage

from . import orders
from .models import OrderCenter, OrderingSection
from .orders import Order, Status
from .pricing import CHINA, yuan_text

LOG = logging.getLogger(__name__)
# The order statuses, in the order Alipay's statuses must progress (refunded: see `shown`).
PROGRESS = (Status.PAID, Status.ACCEPTED, Status.READY, Status.COMPLETED)
BATCH = 100  # orders per app per run; the rest wait for the next minute
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Alipay's times, China time
RANK = {status: rank for rank, status in enumerate((*PROGRESS, Status.REFUNDED))}


def center_status(center: OrderCenter, status: Status) -> str | None:
    """The template's merchant_order_status for an order status (None: not synced)."""
    name: str | None = getattr(center.statuses, status.value, None)
    return name


def shown(center: OrderCenter, status: Status) -> Status | None:
    """The order status whose order-centre status an order in `status` shows: the latest
    mapped one at or before it along PROGRESS; for refunded, refunded's own (where the
    order stood before is not known)."""
    if status == Status.REFUNDED:
        return status if center_status(center, status) else None
    if status not in PROGRESS:
        return None
    reached = PROGRESS[:PROGRESS.index(status) + 1]
    return next((s for s in reversed(reached) if center_status(center, s)), None)


def due(center: OrderCenter, order: Order) -> Status | None:
    """The order status whose order-centre status is to be sent now: what the order
    shows, when later than what it showed at its last accepted sync (None: nothing new)."""
    wanted = shown(center, order.status)
    before = shown(center, order.synced_status) if order.synced_status is not None else None
    if wanted is None or (before is not None and RANK[wanted] <= RANK[before]):
        return None
    return wanted


def _time(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime(TIME_FORMAT)


def sync_order(storage: Storage, client: AlipayClient, section: OrderingSection, center: OrderCenter,
               order: Order) -> bool:
    """Send the order's `due` order-centre status; whether Alipay accepted it. With
    nothing new to send (e.g. ready, unmapped, after accepted was synced), the order is
    marked up to date so the next run does not look at it again."""
    wanted = due(center, order)
    status = center_status(center, wanted) if wanted is not None else None
    if status is None or order.trade_no is None:
        if order.synced_status is not None and order.synced_status != order.status:
            orders.record_sync(storage, order.id, order.status)
        return False
    ext_info = {"merchant_biz_type": center.biz_type, "merchant_order_status": status, "tiny_app_id": order.appid}
    if order.synced_status is None:  # Alipay keeps the first link page it accepts
        ext_info["merchant_order_link_page"] = f"{page_path(section.pages.order.id)}?id={order.out_trade_no}"
    by_user_id = order.user.kind == "user_id"
    try:
        client.merchant_order_sync(
            out_biz_no=order.out_trade_no, trade_no=order.trade_no, amount=yuan_text(order.total),
            items=[OrderItem(name=str(line["name"]), quantity=int(line["quantity"]),
                             unit_price=yuan_text(int(line["unitPrice"])), item_id=str(line["product"]))
                   for line in order.lines],
            ext_info=ext_info, order_create_time=_time(order.created_at),
            order_pay_time=_time(order.paid_at) if order.paid_at is not None else None,
            order_modified_time=_time(storage.clock()),
            buyer_id=order.user.id if by_user_id else None, buyer_open_id=None if by_user_id else order.user.id,
            shop_info={"merchant_shop_id": order.store})
    except (AlipayUnavailable, UnverifiedResponse) as exc:
        # No answer to trust: Alipay may or may not have taken it; the next run sends it again.
        LOG.info("app %s: order %s: order centre did not answer (%s); next run", order.appid, order.out_trade_no, exc)
        return False
    except AlipayError as exc:
        LOG.warning("app %s: order %s: order centre refused %s (%s); not sent again", order.appid,
                    order.out_trade_no, status, exc)
        orders.record_sync(storage, order.id, order.status, refused=exc.sub_code or exc.code)
        return False
    orders.record_sync(storage, order.id, order.status)
    return True


def sync_order_center(storage: Storage, clients: Mapping[str, AlipayClient],
                      sections: Mapping[str, Mapping[str, object]]) -> int:
    """Sync every due order of every app with `ordering.order_center` set; how many
    Alipay accepted."""
    accepted = 0
    for appid, by_name in sections.items():
        section, client = by_name.get("ordering"), clients.get(appid)
        if not isinstance(section, OrderingSection) or section.order_center is None or client is None:
            continue
        center = section.order_center
        # Only orders in a status that shows something: one that shows nothing (paid with
        # `statuses.paid: null`, say) would wait at the head of every batch.
        statuses = [s for s in (*PROGRESS, Status.REFUNDED) if shown(center, s) is not None]
        for order in orders.to_sync(storage, appid, statuses, BATCH):
            accepted += sync_order(storage, client, section, center, order)
    return accepted


def order_center_task(context: TaskContext) -> None:
    """The job queue's run of `sync_order_center`, every minute."""
    accepted = sync_order_center(context.storage, context.clients, context.sections)
    if accepted:
        LOG.info("order centre: %d orders synced", accepted)
