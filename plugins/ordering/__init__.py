"""ordering: customers order from the catalogue and pay with Alipay (点单).

This first slice is the back end: the `ordering:` spec section (models.py), pricing on
the server in integer fen (pricing.py), orders with a state machine in the plugin's own
table (orders.py, Alembic branch `versions/`), the routes that create an order with its
Alipay trade and take Alipay's signed payment notification (serve.py), and the sandbox's
trade methods and buyer's payment (sandbox.py). The menu, cart and order pages and the
merchant's order board come later.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from builder.plugin_api import Problem, ValidSpec, hookimpl

from .models import OrderingSection

if TYPE_CHECKING:  # the back end's types: a build never loads them
    from collections.abc import Sequence

    from starlette.routing import BaseRoute, Route

    from builder.serve.plugin_api import Endpoint, PeriodicTask, SandboxMethod
    from builder.serve.storage import Storage
    from builder.spec_models import CatalogueProduct

__version__ = "0.1.0"
__all__ = ["OrderingSection"]
MIGRATIONS = Path(__file__).parent / "versions"


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"ordering": OrderingSection}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    section: OrderingSection | None = spec.section("ordering")
    if section is None:
        return []
    problems = spec.duplicate_ids(section.hours, ("ordering", "hours"), "store's hours", key="store")
    if spec.model.catalogue is None:
        problems.append(spec.problem(("ordering",), "ordering needs a catalogue to order from, and the spec has none",
                                     hint="add a top-level 'catalogue:' with categories and products"))
    if spec.backend_url is None:
        problems.append(spec.problem(("ordering",), "orders are priced and paid through the merchant back end, and "
                                                    "none is set",
                                     hint="add a top-level 'backend:' with 'base_url: https://...' (mpforge serve)"))
    if not spec.model.merchant.stores:
        problems.append(spec.problem(("ordering",), "ordering needs a store to order at, and merchant.stores is empty",
                                     hint="add the shop under merchant.stores"))
    return problems


# --- the back end (`mpforge serve`): imported only when the back end calls -----------------

@hookimpl
def mpforge_serve_migrations() -> list[Path]:
    return [MIGRATIONS]


@hookimpl
def mpforge_serve_routes() -> list[Endpoint]:
    from .serve import ENDPOINTS

    return list(ENDPOINTS)


@hookimpl
def mpforge_sandbox_methods() -> dict[str, SandboxMethod]:
    from .sandbox import SANDBOX_METHODS

    return dict(SANDBOX_METHODS)


@hookimpl
def mpforge_sandbox_routes() -> list[Route]:
    from .sandbox import SANDBOX_ROUTES

    return list(SANDBOX_ROUTES)


@hookimpl
def mpforge_serve_pages() -> list[BaseRoute]:
    from .board import Board

    return Board().routes()


@hookimpl
def mpforge_serve_tasks() -> list[PeriodicTask]:
    from .serve import TASKS

    return list(TASKS)


@hookimpl
def mpforge_serve_sold_out(storage: Storage, appid: str, products: Sequence[CatalogueProduct]) -> list[str]:
    from .serve import products_gone

    return products_gone(storage, appid, products)
