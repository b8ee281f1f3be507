"""`run_serve`: what `mpforge serve` runs. Loads the specs, builds the app, serves it
with uvicorn until interrupted. `app_from_environment`: the same app for uvicorn's own
command line (`uvicorn --factory builder.serve.server:app_from_environment --workers N`),
configured by environment variables only (docs/deploy.md)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from builder.errors import UserError
from builder.serve.alipay_client import PRODUCTION_GATEWAY
from builder.serve.app import create_app
from builder.serve.local_sandbox import LocalSandbox
from builder.serve.merchant import AlipayConfig, Merchant, load_merchant
from builder.serve.sandbox_state import AUTH_CODE_PREFIX

LOG = logging.getLogger(__name__)
DATABASE_FILE = "mpforge-serve.sqlite3"
SPECS_VARIABLE = "MPFORGE_SERVE_SPECS"
DATABASE_VARIABLE = "MPFORGE_DATABASE_URL"
SECRET_VARIABLE = "MPFORGE_SERVE_SECRET"
GATEWAY_VARIABLE = "MPFORGE_ALIPAY_GATEWAY"
MIN_SECRET_BYTES = 32


def default_database_url(merchant: Merchant) -> str:
    """SQLite in a file beside the (first) spec."""
    return f"sqlite:///{merchant.spec_path.resolve().parent / DATABASE_FILE}"


def load_merchants(spec_paths: Sequence[str | Path]) -> list[Merchant]:
    """The merchants of the specs."""
    if not spec_paths:
        raise UserError("mpforge serve needs at least one spec")
    return [load_merchant(path) for path in spec_paths]


def run_serve(spec_paths: Sequence[str | Path], database_url: str | None = None, *, host: str = "127.0.0.1",
              port: int = 8000, sandbox: bool = False, secret: bytes | None = None,
              gateway_url: str = PRODUCTION_GATEWAY,
              forwarded_allow_ips: str | None = None, log_level: str = "info") -> None:
    """Serve the back end of the mini-programs in `spec_paths` (spec files or project
    folders, each with app.appid) on host:port until interrupted.

    database_url: sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB; default a SQLite
        file beside the first spec. The schema is migrated at start-up.
    sandbox: stand a sandbox gateway in for Alipay, in this process (on 127.0.0.N:80,
        the only port Alipay's SDK reaches, so it needs root or CAP_NET_BIND_SERVICE),
        with fresh keys and one voucher activity per coupon; log in with the auth code
        sandbox-user-<anything>. Otherwise each app's keys come from the environment,
        MPFORGE_ALIPAY_APP_PRIVATE_KEY_<appid> and MPFORGE_ALIPAY_PUBLIC_KEY_<appid>,
        and calls go to `gateway_url`.
    secret: signs session tokens, at least 32 bytes. Default: random for this process,
        so a restart logs users out; processes sharing users must share one secret.
    forwarded_allow_ips: the proxies whose X-Forwarded-For names the client (for the
        per-address rate limit), as uvicorn takes them; default none is trusted.

    The job worker that settles pending claims (builder.serve.jobs) runs in this process.
    For several processes and hosts, see docs/deploy.md and `app_from_environment`.

    Raises UserError for a spec that does not build, has no app id, or a missing key.
    """
    merchants = load_merchants(spec_paths)
    with ExitStack() as stack:
        if sandbox:
            try:
                local = stack.enter_context(LocalSandbox(merchants))
            except PermissionError:
                raise UserError("--sandbox listens on port 80 of a loopback address (the only port Alipay's SDK "
                                "reaches), which needs root or CAP_NET_BIND_SERVICE") from None
            alipay = local.alipay
            LOG.warning("sandbox gateway at %s stands in for Alipay; log in with auth code %s<name>",
                        alipay.gateway_url, AUTH_CODE_PREFIX)
        else:
            alipay = AlipayConfig.from_environment([m.appid for m in merchants], gateway_url=gateway_url)
        app = create_app(merchants, database_url or default_database_url(merchants[0]), alipay=alipay,
                         secret=secret or secrets.token_bytes(32))
        if sandbox:
            # uvicorn ends the process by re-raising SIGTERM after its shutdown, past any
            # clean-up of ours: the clients hold the keys, so the files can go now.
            local.remove_key_files()
        uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=forwarded_allow_ips is not None,
                    forwarded_allow_ips=forwarded_allow_ips)


def app_from_environment() -> Starlette:
    """The back end configured by the environment, for `uvicorn --factory
    builder.serve.server:app_from_environment` (each of uvicorn's workers calls it):

    MPFORGE_SERVE_SPECS: the spec files or project folders, separated by ":" (";" on
        Windows); MPFORGE_DATABASE_URL: as `run_serve`'s database_url (required: workers
        and hosts share one database); MPFORGE_SERVE_SECRET: signs session tokens, at
        least 32 bytes, the same in every process (required: a random one per worker
        would log users out whenever the load balancer picks another);
        MPFORGE_ALIPAY_GATEWAY: Alipay's gateway URL (default production's); and each
        app's keys, MPFORGE_ALIPAY_APP_PRIVATE_KEY_<appid> and MPFORGE_ALIPAY_PUBLIC_KEY_<appid>.

    Raises UserError naming the variable that is missing or wrong.
    """
    specs = [path for path in os.environ.get(SPECS_VARIABLE, "").split(os.pathsep) if path.strip()]
    if not specs:
        raise UserError(f"set {SPECS_VARIABLE} to the spec files or project folders to serve, separated by "
                        f"{os.pathsep!r}")
    database_url = os.environ.get(DATABASE_VARIABLE, "")
    if not database_url:
        raise UserError(f"set {DATABASE_VARIABLE} (postgresql://USER:PASSWORD@HOST/DB, or sqlite:///FILE for a "
                        "single host): every worker must use the same database")
    secret = os.environ.get(SECRET_VARIABLE, "").encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise UserError(f"set {SECRET_VARIABLE} to a secret of at least {MIN_SECRET_BYTES} bytes, the same for "
                        "every worker (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))')")
    merchants = load_merchants(specs)
    alipay = AlipayConfig.from_environment([m.appid for m in merchants],
                                           gateway_url=os.environ.get(GATEWAY_VARIABLE) or PRODUCTION_GATEWAY)
    return create_app(merchants, database_url, alipay=alipay, secret=secret)
