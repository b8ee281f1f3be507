"""membership: Alipay's regular-customer model (C-CARE) for one shop: the member card,
points and levels, the stamp card, subscription messages, favourites and customer
service, and the merchant's customer view with segments (棋盘密云).

The spec side: the `membership:` section (models.py), the member page and the blocks
(blocks.py, templates/), `services/membership.js`. The back end: the plugin's tables
(tables.py, Alembic branch `versions/`); the card (card_api.py: template, claim, points
pushed to Alipay's copy), points and rewards (points.py), stamps and the till's code
(stamps_api.py, till.py), subscription messages (messages.py), segments and the
customer view (segments.py, customer_view.py), the coupon audiences it answers
(audience.py), a customer's own data (privacy.py), and the sandbox's Alipay methods
(sandbox_*.py). docs/membership.md is the guide.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.plugin_api import Problem, ValidSpec, hookimpl

from .models import MembershipSection

if TYPE_CHECKING:  # the back end's types: a build never loads them
    from starlette.routing import BaseRoute, Route

    from builder.serve.plugin_api import BusinessEvent, Endpoint, PeriodicTask, SandboxMethod, TaskContext
    from builder.serve.storage import AlipayUser, Storage

__version__ = "0.1.0"
__all__ = ["MembershipSection"]
MIGRATIONS = Path(__file__).parent / "versions"
TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"membership": MembershipSection}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    section: MembershipSection | None = spec.section("membership")
    problems: list[Problem] = []
    if section is None:
        return problems
    problems += spec.duplicate_ids(section.levels, ("membership", "levels"), "level id")
    problems += spec.duplicate_ids(section.segments, ("membership", "segments"), "segment id")
    level_ids = [level.id for level in section.levels]
    for i, segment in enumerate(section.segments):
        for j, level in enumerate(segment.rule.levels or []):
            if level not in level_ids:
                problems.append(spec.problem(("membership", "segments", i, "rule", "levels", j),
                                             f"no level {level!r}; the levels are {', '.join(level_ids)}"))
    if spec.backend_url is None:
        problems.append(spec.problem(("membership",), "members, points and stamps are kept by the merchant back "
                                                      "end, and none is set",
                                     hint="add a top-level 'backend:' with 'base_url: https://...' (mpforge serve)"))
    return problems


# --- the back end (`mpforge serve`): imported only when the back end calls -----------------

@hookimpl
def mpforge_serve_migrations() -> list[Path]:
    return [MIGRATIONS]


@hookimpl
def mpforge_serve_routes() -> list[Endpoint]:
    from . import card_api, messages, points, stamps_api

    return [*card_api.ENDPOINTS, *points.ENDPOINTS, *stamps_api.ENDPOINTS, *messages.ENDPOINTS]


@hookimpl
def mpforge_serve_pages() -> list[BaseRoute]:
    from .customer_view import CustomerView
    from .till import Till

    return [*Till().routes(), *CustomerView().routes()]


@hookimpl
def mpforge_serve_tasks() -> list[PeriodicTask]:
    from . import card_api, messages, points, stamps_api

    return [*card_api.TASKS, *points.TASKS, *messages.TASKS, *stamps_api.TASKS]


@hookimpl
def mpforge_serve_event(context: TaskContext, event: BusinessEvent) -> None:
    from . import messages, points

    points.on_event(context, event)
    messages.on_event(context, event)


@hookimpl
def mpforge_serve_in_audience(storage: Storage, appid: str, user: AlipayUser, audience: str,
                              sections: Mapping[str, Any]) -> bool | None:
    from .audience import in_audience

    return in_audience(storage, appid, user, audience, sections)


@hookimpl
def mpforge_serve_user_data(storage: Storage, appid: str, user: AlipayUser) -> dict[str, Any]:
    from .privacy import user_data

    return user_data(storage, appid, user)


@hookimpl
def mpforge_serve_forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    from .privacy import forget_user

    forget_user(storage, appid, user)


@hookimpl
def mpforge_sandbox_methods() -> dict[str, SandboxMethod]:
    from . import sandbox_card, sandbox_messages, sandbox_qipan

    return {**sandbox_card.SANDBOX_METHODS, **sandbox_messages.SANDBOX_METHODS, **sandbox_qipan.SANDBOX_METHODS}


@hookimpl
def mpforge_sandbox_routes() -> list[Route]:
    from . import sandbox_card

    return list(sandbox_card.SANDBOX_ROUTES)
