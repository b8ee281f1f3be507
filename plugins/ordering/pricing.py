"""An order's price, computed on the server from the catalogue: never from the client.

Pure functions over the spec's catalogue and ordering section, the runtime content's
prices and sold-out marks, and the time: `price_order(menu, request, now)` gives the
lines with their unit prices (the product's price plus its chosen choices'), the
packaging and delivery fees and the total, all in integer fen; or `Refused` with every
problem found, each located in the request (`lines.0.choices.size`) and saying what was
expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from builder.spec_models import CatalogueProduct, ProductOption

from .models import Mode, OrderingSection, minutes

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991
MAX_QUANTITY = 99
# Problems the customer can fix by changing the request (422), and those the state of the
# shop causes (409: sold out, closed, too little ordered), in the order they are reported.
INVALID = "invalid_order"
CONFLICTS = ("sold_out", "store_closed", "below_minimum")


def fen(yuan: Decimal) -> int:
    """Yuan (at most 2 decimals, as the spec validates) as integer fen."""
    value = yuan * 100
    if value != value.to_integral_value():
        raise ValueError(f"{yuan} yuan has more than 2 decimals")
    return int(value)


def yuan_text(amount: int) -> str:
    """Fen as Alipay writes yuan: "38.00"."""
    return f"{amount // 100}.{amount % 100:02d}"


@dataclass(frozen=True)
class LineRequest:
    product: str
    quantity: int
    choices: Mapping[str, Sequence[str]]  # option id -> the choice ids taken


@dataclass(frozen=True)
class OrderRequest:
    store: str
    mode: str
    lines: Sequence[LineRequest]


@dataclass(frozen=True)
class Menu:
    """What an order is priced from: the spec's catalogue products, its ordering section
    and store ids, and the runtime content's price and sold-out mark of each product it
    lists (a published content version changes them without a new mini-program)."""

    products: Mapping[str, CatalogueProduct]
    ordering: OrderingSection
    stores: Sequence[str]
    runtime: Mapping[str, tuple[Decimal, bool]]  # product id -> (price in yuan, sold out)


@dataclass(frozen=True)
class Choice:
    option: str
    choice: str
    name: str
    price: int  # fen added to the product's price


@dataclass(frozen=True)
class PricedLine:
    product: str
    name: str
    quantity: int
    choices: tuple[Choice, ...]
    unit_price: int  # fen: the product's price plus its choices'
    amount: int  # fen: unit_price * quantity


@dataclass(frozen=True)
class Priced:
    store: str
    mode: Mode
    lines: tuple[PricedLine, ...]
    subtotal: int
    packaging_fee: int
    delivery_fee: int
    total: int


@dataclass(frozen=True)
class Problem:
    code: str  # INVALID or one of CONFLICTS
    location: str
    message: str


class Refused(Exception):
    """The order cannot be priced: every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.location}: {p.message}" for p in problems))
        self.problems = tuple(problems)

    @property
    def code(self) -> str:
        """invalid_order when the request itself is wrong, else the first conflict."""
        codes = [p.code for p in self.problems]
        return INVALID if INVALID in codes else next(c for c in CONFLICTS if c in codes)


def is_open(ordering: OrderingSection, store: str, now: datetime) -> bool:
    """Whether `store` takes orders at `now` (aware), by its hours in China time."""
    hours = ordering.store_hours(store)
    if hours is None:
        return True
    local = now.astimezone(CHINA)
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in map(minutes, hours.spans(local.weekday())))


def price_order(menu: Menu, request: OrderRequest, now: datetime) -> Priced:
    """The order priced in fen; Refused naming every problem."""
    problems: list[Problem] = []
    ordering = menu.ordering
    offered = ordering.offered()
    if request.mode not in offered:
        problems.append(Problem(INVALID, "mode", f"mode {request.mode!r} is not offered; this shop offers "
                                                 f"{', '.join(offered)}"))
    known_store = request.store in menu.stores
    if not known_store:
        problems.append(Problem(INVALID, "store", f"no store {request.store!r}; the stores are "
                                                  f"{', '.join(menu.stores) or '(none)'}"))
    if not request.lines:
        problems.append(Problem(INVALID, "lines", "the order has no lines; add at least one product"))
    lines = []
    for i, line in enumerate(request.lines):
        priced = _price_line(menu, request.store if known_store else None, line, f"lines.{i}", problems)
        if priced is not None:
            lines.append(priced)
    if known_store and not is_open(ordering, request.store, now):
        problems.append(Problem("store_closed", "store", f"store {request.store!r} takes no orders now (China time "
                                                         f"{now.astimezone(CHINA):%a %H:%M}); see its hours"))
    subtotal = sum(line.amount for line in lines)
    if not problems and subtotal < fen(ordering.minimum):
        problems.append(Problem("below_minimum", "lines", f"the products cost {yuan_text(subtotal)} yuan; the "
                                                          f"minimum order is {yuan_text(fen(ordering.minimum))}"))
    mode = next((m for m in offered if m == request.mode), None)
    if problems or mode is None:
        raise Refused(problems)
    packaging = fen(ordering.packaging_fee) if mode in ("takeaway", "delivery") else 0
    delivery = fen(ordering.delivery.fee) if mode == "delivery" and ordering.delivery is not None else 0
    return Priced(store=request.store, mode=mode, lines=tuple(lines), subtotal=subtotal, packaging_fee=packaging,
                  delivery_fee=delivery, total=subtotal + packaging + delivery)


def _price_line(menu: Menu, store: str | None, line: LineRequest, at: str,
                problems: list[Problem]) -> PricedLine | None:
    product = menu.products.get(line.product)
    if product is None:
        problems.append(Problem(INVALID, f"{at}.product", f"no product {line.product!r} in the catalogue"))
        return None
    found = len(problems)
    if not 1 <= line.quantity <= MAX_QUANTITY:
        problems.append(Problem(INVALID, f"{at}.quantity", f"quantity {line.quantity} is not 1 to {MAX_QUANTITY}"))
    if store is not None and product.stores is not None and store not in product.stores:
        problems.append(Problem(INVALID, f"{at}.product", f"{product.name!r} is not sold at store {store!r} (only "
                                                          f"at {', '.join(product.stores)})"))
    price, sold_out = menu.runtime.get(product.id, (product.price, product.sold_out))
    if sold_out:
        problems.append(Problem("sold_out", f"{at}.product", f"{product.name!r} is sold out"))
    options = {o.id: o for o in product.options}
    for option_id in line.choices:
        if option_id not in options:
            problems.append(Problem(INVALID, f"{at}.choices.{option_id}",
                                    f"{product.name!r} has no option {option_id!r}; its options are "
                                    f"{', '.join(options) or '(none)'}"))
    chosen = [c for option in product.options
              for c in _choices(option, line.choices.get(option.id), f"{at}.choices.{option.id}", problems)]
    if len(problems) > found:
        return None
    unit = fen(price) + sum(c.price for c in chosen)
    return PricedLine(product=product.id, name=product.name, quantity=line.quantity, choices=tuple(chosen),
                      unit_price=unit, amount=unit * line.quantity)


def _choices(option: ProductOption, taken: Sequence[str] | None, at: str, problems: list[Problem]) -> list[Choice]:
    """The choices taken of one option: the request's, else its default; checked."""
    by_id = {c.id: c for c in option.choices}
    ids = list(taken) if taken is not None else ([option.default] if option.default is not None else [])
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        problems.append(Problem(INVALID, at, f"option {option.name!r} has no choice {', '.join(map(repr, unknown))}; "
                                             f"its choices are {', '.join(by_id)}"))
        return []
    if len(set(ids)) != len(ids):
        problems.append(Problem(INVALID, at, f"a choice of option {option.name!r} is taken twice"))
        return []
    if not option.multiple and len(ids) > 1:
        problems.append(Problem(INVALID, at, f"option {option.name!r} takes one choice, not {len(ids)}"))
        return []
    required = option.required if option.required is not None else not option.multiple
    if required and not ids:
        problems.append(Problem(INVALID, at, f"option {option.name!r} needs a choice: one of {', '.join(by_id)}"))
        return []
    return [Choice(option.id, i, by_id[i].name, fen(by_id[i].price)) for i in ids]
