# mypy: disable-error-code="empty-body"
# (hook specifications have no bodies; pluggy calls the implementations)
"""The mpforge plugin API: every hook a plugin may implement.

Hooks are called in the pipeline order below, every plugin's result collected (no hook
stops at a first result). Arguments are passed by name, so an implementation may
accept only the ones it needs. The core blocks and checks are registered through these
same hooks by `builder.core_plugin`. `builder.hooks` checks each plugin against these
specifications when it is registered (hook names, argument names; wrappers are
refused) and each result against the type documented here, naming the plugin.

Pipeline (and the order of this module): load -> validate (`mpforge_spec_sections`,
`mpforge_block_types`, `mpforge_pages`, `mpforge_reference_targets`, `mpforge_validate`) -> plan (`mpforge_app_json`,
`mpforge_page_json`) -> render (`mpforge_template_dirs`, `mpforge_app_script`,
`mpforge_services`) -> check
(`mpforge_checks`) -> write -> `mpforge_after_build`.

The back end (`mpforge serve`, builder/serve/) calls the last hooks, never a build:
`mpforge_serve_migrations` when its database is migrated at start-up,
`mpforge_serve_routes`, `mpforge_serve_pages` and `mpforge_serve_tasks` when its app is
made, `mpforge_serve_sold_out` for each GET content, `mpforge_serve_event` when a plugin
announces what happened to a customer, `mpforge_serve_in_audience` when a coupon's
audience is checked, `mpforge_serve_user_data` and `mpforge_serve_forget_user` when a
user asks for their data or its deletion, and the sandbox gateway
`mpforge_sandbox_methods` and `mpforge_sandbox_routes`. Their types are the back end's
(Starlette, SQLAlchemy), named here only for type checkers, so a build never imports
them; a plugin implements these hooks in a module of its own (e.g. ``serve.py``) that
its hook imports when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from .errors import Problem
from .filetree import FileTree
from .model import AppPlan, AppScript, BlockType, PagePlan, ValidSpec
from .spec_models import CatalogueProduct, Page
from .write import WriteResult

if TYPE_CHECKING:  # the back end's types; a build never loads them
    from starlette.routing import BaseRoute, Route

    from .serve.business_events import BusinessEvent
    from .serve.jobs import PeriodicTask, TaskContext
    from .serve.openapi import Endpoint
    from .serve.sandbox_methods import SandboxMethod
    from .serve.storage import AlipayUser, Storage

HOOK_API_VERSION = 1
hookspec = pluggy.HookspecMarker("mpforge")
hookimpl = pluggy.HookimplMarker("mpforge")


@hookspec
def mpforge_spec_sections() -> dict[str, type[BaseModel]]:
    """Add top-level spec sections.

    Called once per build while the spec model is assembled. Return a dict mapping a
    section key (by convention the plugin's name, e.g. ``"coupon"``) to a pydantic model
    for that section. Sections are optional in the spec; unknown keys inside them are
    errors. Two plugins claiming the same key is an error naming both.
    """


@hookspec
def mpforge_block_types() -> list[BlockType]:
    """Add block types that pages can use.

    Called once per build. Return a list of `builder.plugin_api.BlockType`. Each block's
    model must subclass `builder.plugin_api.Block` with ``type: Literal["<name>"]``. Block
    names must be unique across all plugins.
    """


@hookspec
def mpforge_pages(spec: ValidSpec) -> list[Page]:
    """Add pages the spec did not declare (e.g. a coupon centre).

    Called after the spec model validated, before cross-references are checked, so
    links to these pages are valid. Return a list of `builder.spec_models.Page` whose
    `blocks` are block model instances; they are planned and rendered like spec pages,
    after them. Their ids must not clash with other pages.
    """


@hookspec
def mpforge_reference_targets(spec: ValidSpec) -> dict[str, list[str]]:
    """Declare the ids that references of a kind may point at.

    Called once after every page is known, before `mpforge_validate`. Return a dict
    mapping a reference kind to the ids this plugin defines, e.g.
    ``{"coupon": ["welcome-5", "latte-free"]}``. Spec fields typed with a
    `builder.spec_models.Ref` subclass of that kind (see `ref_field`) are then checked
    against these ids, with located errors; a kind no enabled plugin provides is an
    error naming the plugin the reference needs. The core provides "page" and "store".
    """


@hookspec
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    """Check rules that span sections (cross-references, business rules).

    Called once after the spec model validated and every page is known. Return a list
    of `builder.errors.Problem`; make located ones with ``spec.problem(path, message)``.
    Problems with severity ``"warning"`` are reported but do not stop the build.
    """


@hookspec
def mpforge_app_json(app_json: dict[str, Any], mini_project: dict[str, Any], spec: ValidSpec) -> None:
    """Adjust ``app.json`` and ``mini.project.json`` in place before they are rendered.

    E.g. add a plugin to ``app_json["plugins"]``, or a folder of files that are not part
    of the mini-program (reports, print files) to ``mini_project["uploadExclude"]`` (glob
    patterns the IDE leaves out of the upload). Return value is ignored.
    """


@hookspec
def mpforge_page_json(page_json: dict[str, Any], page: PagePlan, spec: ValidSpec) -> None:
    """Adjust one page's ``.json`` in place (window keys, usingComponents).

    `page.share` (title, desc, path, and optional imageUrl and channel) may be adjusted
    here too: it is what the page's onShareAppMessage returns. Return value is ignored.
    """


@hookspec
def mpforge_template_dirs() -> list[Path]:
    """Add folders to the Jinja2 template search path.

    Called once per build. Return a list of directories. The project's own
    ``templates/`` folder is searched first, then plugin folders, then the core's.
    """


@hookspec
def mpforge_app_script(spec: ValidSpec, render: Callable[..., str]) -> AppScript:
    """Add members to the `App({...})` object in app.js (e.g. launch tracking).

    Called during render. Return a `builder.plugin_api.AppScript`: `members` is JS text of
    object members (render it with `render(template_name, **context)`), and
    `on_launch` / `on_show` name members the core's `onLaunch(options)` /
    `onShow(options)` call, so several plugins can react to the same event.
    """


@hookspec
def mpforge_services(plan: AppPlan, spec: ValidSpec, render: Callable[..., str]) -> dict[str, str]:
    """Contribute app-level files, e.g. ``{"services/coupon.js": "<source>"}``.

    Called during render. `render(template_name, **context)` renders a template with
    the build's environment (project overrides first, `[[ ]]` delimiters, the `js`
    filter for JSON data). Return a dict of output path to text; paths must not clash
    with other plugins' or the core's files.
    """


@hookspec
def mpforge_checks() -> list[Callable[[FileTree], list[Problem]]]:
    """Add output rules run over the rendered file tree before anything is written.

    Return a list of callables taking the `builder.filetree.FileTree` and returning a
    list of problems; any error stops the build and nothing is written.
    """


@hookspec
def mpforge_after_build(result: WriteResult, spec: ValidSpec) -> None:
    """Run after the output was written (not after ``mpforge check``). Return value is ignored."""


@hookspec
def mpforge_serve_migrations() -> list[Path]:
    """Add folders of Alembic revisions: the tables the plugin's back-end routes use.

    Called once when `mpforge serve` starts, before its database is migrated. Each folder
    holds the plugin's own branch: its first revision has ``down_revision = None``,
    ``branch_labels = ("<plugin name>",)`` and ``depends_on = "0001"`` (the core's first
    revision), later ones revise the plugin's own. They are run with the core's, every
    branch to its newest revision, in the start-up's one transaction; a revision already
    applied is not run again. Tables go into the plugin's revisions, never into a change
    of the core's (which databases in use have already applied).
    """


@hookspec
def mpforge_serve_routes() -> list[Endpoint]:
    """Add routes to the back end's API (`mpforge serve`).

    Called once when the back end's app is made. Return a list of
    `builder.serve.plugin_api.Endpoint`: an `Operation` (method, path under
    ``/api/v1/{appid}``, request and response models, errors), which the OpenAPI
    document describes, and its handler, ``async def handler(request) -> Response``.
    A handler finds what it shares with the core's (the merchants, their Alipay
    clients, the storage, the session tokens, the limits, the clock, the job queue)
    with ``serve_api(request)``, and answers errors by raising `ApiError`. Two routes
    with the same method and path, or the same operation name, are an error naming both
    plugins.
    """


@hookspec
def mpforge_serve_tasks() -> list[PeriodicTask]:
    """Add periodic tasks to the back end (`mpforge serve`): work that no request starts,
    e.g. settling orders whose payment never came.

    Called once when the back end's app is made. Return a list of
    `builder.serve.plugin_api.PeriodicTask`: a name unique among every plugin's tasks,
    a blocking function ``run(context)`` given the `TaskContext` (the storage, and by
    app id each app's Alipay client and its spec's plugin sections), and a cron (every
    minute by default). The job queue runs each by its cron (and at start-up, its latest
    tick if less than 10 minutes old), in a thread, each tick in one process even when
    several share a PostgreSQL database (builder.serve.jobs). Runs may still overlap
    (one outlasting its tick) or repeat (a process dying in one), so a task's changes
    must be safe to make twice at once. An exception is logged, and the next tick runs
    it again. A name two plugins use is an error naming both.
    """


@hookspec
def mpforge_serve_sold_out(storage: Storage, appid: str, products: Sequence[CatalogueProduct]) -> list[str]:
    """Name the catalogue products of app `appid` (`products`: its spec's) that are sold
    out by the plugin's own count (e.g. the ordering plugin's stock, at 0): the back
    end's GET content shows them ``soldOut`` besides those its content marks.

    Called for every GET content, in a worker thread; `storage` is the back end's
    `builder.serve.storage.Storage` (read the plugin's tables with
    ``storage.engine.connect()``). Return a list of product ids; keep it to one quick
    query, and none for an app with nothing the plugin counts.
    """


@hookspec
def mpforge_serve_event(context: TaskContext, event: BusinessEvent) -> None:
    """Act on what happened to a customer in another plugin (or this one): `event` is a
    `builder.serve.business_events.BusinessEvent`, e.g. ``order_paid`` announced by the
    ordering plugin once the payment is stored; `context` the `TaskContext` (storage,
    Alipay clients and spec sections by app id).

    Called in a worker thread, after the announcer's change is committed; an exception
    is logged naming the plugin and does not reach the announcer. The same event may be
    announced again (a payment notified twice): act once per (appid, kind, ref). Return
    value is ignored.
    """


@hookspec
def mpforge_serve_in_audience(storage: Storage, appid: str, user: AlipayUser, audience: str,
                              sections: Mapping[str, Any]) -> bool | None:
    """Say whether `user` of app `appid` is in `audience`, a coupon's audience the core
    cannot check itself: ``"members"``, or ``"segment:<id>"`` (a membership segment).
    `sections`: the app's validated spec sections by key (Merchant.sections), where a
    plugin finds its rules (e.g. the segments').

    Called for every claim of such a coupon, in a worker thread. Return True or False for
    an audience the plugin knows, None for any other. A coupon whose audience no plugin
    answers for is refused (403 audience_not_checked): it is never issued to anyone.
    """


@hookspec
def mpforge_serve_user_data(storage: Storage, appid: str, user: AlipayUser) -> dict[str, Any]:
    """What the plugin stores about `user` of app `appid`, for the user's own view of
    their data (GET /api/v1/{appid}/me/data): a dict of JSON values (e.g.
    ``{"membership": {"points": 120, "stampsThisCard": 3}}``), keyed by what it is.

    Called in a worker thread. Return every personal record the plugin keeps (what the
    privacy policy lists), nothing of other users.
    """


@hookspec
def mpforge_serve_forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    """Delete what the plugin stores about `user` of app `appid` (DELETE
    /api/v1/{appid}/me/data). Records the merchant must keep (a paid order, for its
    accounts) lose the user's identity instead. Called in a worker thread; must be safe to
    call twice. Return value is ignored.
    """


@hookspec
def mpforge_sandbox_methods() -> dict[str, SandboxMethod]:
    """Add Alipay OpenAPI methods to the sandbox gateway, which stands in for Alipay.

    Called once when the sandbox's app is made. Return a dict mapping an Alipay method
    name (``"alipay.marketing.activity.ordervoucher.send"``) to its handler,
    ``handler(state, app_id, params) -> dict``: the `SandboxState`, the calling app and
    the request's parameters (``biz_content`` still JSON text), answering the fields of
    Alipay's response (code and msg included), or raising `SandboxRefusal` as Alipay
    refuses. The gateway has checked the app, the signature and the timestamp first,
    and signs the answer. A method two plugins answer is an error naming both.
    """


@hookspec
def mpforge_sandbox_routes() -> list[Route]:
    """Add routes to the sandbox gateway's app besides ``/gateway.do`` (e.g. the images
    of the mini-program codes it issued).

    Called once when the sandbox's app is made. Return a list of
    ``starlette.routing.Route``; a handler finds the `SandboxState` as
    ``request.app.state.sandbox``.
    """


@hookspec
def mpforge_serve_pages() -> list[BaseRoute]:
    """Add web pages to the back end (`mpforge serve`) outside its API: pages people open
    in a browser, such as the ordering plugin's order board at ``/merchant/{appid}/orders``,
    with their scripts, styles and the JSON only those pages call.

    Called once when the back end's app is made (so an object made in the call lives as
    long as the app: per-app state such as a rate limiter belongs there, never in a module
    global). Return a list of ``starlette.routing.BaseRoute`` (``Route`` or ``Mount``),
    served as given; a path under ``/api/`` is refused, naming the plugin (the API is
    `mpforge_serve_routes`', documented in OpenAPI). A handler finds what the API's
    handlers share with ``serve_api(request)`` and may raise `ApiError`, answered as JSON.
    The page itself answers for what a browser needs: its login, CSRF checks and
    Content-Security-Policy.
    """
