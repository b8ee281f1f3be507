"""The JSON of the ordering routes (camelCase on the wire, as builder.serve.api_models).
Amounts in replies are integer fen; a request carries no amount at all: the server
prices it (pricing.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from builder.serve.api_models import Reply, Request
from builder.spec_models import ID_PATTERN

from .pricing import MAX_QUANTITY


class OrderLineRequest(Request):
    product: str = Field(pattern=ID_PATTERN, description="a product id of the catalogue")
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    choices: dict[str, list[str]] = Field(
        default_factory=dict, max_length=10,
        description="option id -> the choice ids taken (one for a single-choice option); an option left out "
                    "takes its default")


class OrderRequest(Request):
    store: str = Field(pattern=ID_PATTERN, description="a store id of merchant.stores")
    mode: Literal["dine_in", "takeaway", "delivery"]
    table: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$",
                              description="the table (dine_in), as the table sticker names it")
    lines: list[OrderLineRequest] = Field(min_length=1, max_length=50)


class ChoiceReply(Reply):
    option: str
    choice: str
    name: str
    price: int = Field(description="fen added to the product's price")


class OrderLineReply(Reply):
    product: str
    name: str
    quantity: int
    choices: list[ChoiceReply]
    unit_price: int = Field(description="fen: the product's price plus its choices'")
    amount: int = Field(description="fen: unitPrice times quantity")


class OrderReply(Reply):
    id: str = Field(description="the order number (Alipay's out_trade_no)")
    status: Literal["created", "paid", "accepted", "ready", "completed", "closed", "refunded"]
    trade_no: str | None = Field(description="Alipay's trade number: pass it to my.tradePay({tradeNO}); null "
                                             "until the trade is created")
    store: str
    mode: str
    table: str | None
    lines: list[OrderLineReply]
    subtotal: int = Field(description="fen, as every amount here")
    packaging_fee: int
    delivery_fee: int
    total: int
    total_text: str = Field(description="the total in yuan, as Alipay writes it: 38.00")
    created_at: datetime
    paid_at: datetime | None


class OrdersReply(Reply):
    orders: list[OrderReply]
