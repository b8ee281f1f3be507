"""What the sandbox gateway remembers between calls: users, voucher activities, follows, the plugins' own state,
the mini-program codes it issued, and the faults a test asks it to show. One explicit object per sandbox, thread-safe
(uvicorn's event loop and the test thread both use it), no module state.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

PluginStateT = TypeVar("PluginStateT")

# Auth codes of this form log in as user <id>: sandbox-user-42, sandbox-user-alice.
AUTH_CODE_PREFIX = "sandbox-user-"


def sandbox_user_id(login: str) -> str:
    """The stable 16-digit Alipay user_id ("2088" + 12 digits) of sandbox login <login>."""
    digits = int(hashlib.sha256(f"user:{login}".encode()).hexdigest(), 16) % 10**12
    return f"2088{digits:012d}"


def sandbox_open_id(app_id: str, user_id: str) -> str:
    """The user's open_id in `app_id`: like Alipay's, one per app and user, opaque."""
    return "sbx" + hashlib.sha256(f"open:{app_id}:{user_id}".encode()).hexdigest()[:40]


class Refusal(enum.Enum):
    """Why the sandbox would not issue a voucher; sandbox.py turns each into Alipay's reply."""

    UNKNOWN_ACTIVITY = "unknown activity"
    STOCK_EXHAUSTED = "stock exhausted"
    USER_LIMIT_REACHED = "user limit reached"
    OUT_BIZ_NO_REUSED = "out_biz_no reused with other parameters"


@dataclass(frozen=True)
class Issued:
    """One voucher issued, and what its request asked for (a repeat must ask the same)."""

    voucher_code: str
    user_id: str
    request: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Faults:
    """Misbehaviour on demand. delay_seconds: answer that much later (after doing the
    work, as a slow gateway does); tamper: sign a response, then change it; busy: answer
    20000 isp.unknow-error; http_status: answer with this HTTP status instead of 200."""

    delay_seconds: float = 0.0
    tamper: bool = False
    busy: bool = False
    http_status: int = 200


@dataclass
class _Activity:
    stock: int
    per_user_limit: int
    issued: int = 0


class SandboxState:
    """`clock` is the gateway's clock, compared with each request's timestamp. The SDK
    stamps requests with the host's local time (`datetime.now()`), so the default clock is
    the same; Alipay reads the timestamp as Beijing time, which is why a production host
    should run in Asia/Shanghai. `timestamp_tolerance` is the sandbox's choice: Alipay
    publishes no window."""

    def __init__(self, clock: Callable[[], datetime] = datetime.now,
                 timestamp_tolerance: timedelta = timedelta(minutes=15)) -> None:
        self.clock = clock
        self.timestamp_tolerance = timestamp_tolerance
        self.faults = Faults()  # replaced whole, so a request reads one consistent set
        # Apps on Alipay's OpenID scheme: their logins name the user by open_id only.
        self.open_id_apps: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._activities: dict[str, _Activity] = {}
        self._issued: dict[tuple[str, str], Issued] = {}  # (activity_id, out_biz_no)
        self._per_user: dict[tuple[str, str], int] = {}  # (activity_id, user_id) -> vouchers
        self._open_ids: dict[tuple[str, str], str] = {}  # (app_id, open_id) -> user_id
        self._tokens: dict[tuple[str, str], str] = {}  # (app_id, access_token) -> user_id
        self._follows: set[tuple[str, str]] = set()  # (life account app_id, user_id)
        # Mini-program codes: the base URL the image URLs point at (the server's, once its
        # address is known; None: an unresolvable host), the apps that have not bound the
        # 小程序码 product (their qrcode.create is refused), and each code's content by name.
        self.public_url: str | None = None
        self.qrcode_refused_apps: frozenset[str] = frozenset()
        self._qrcodes: dict[str, str] = {}  # code name -> the URL its image encodes
        self._qrcode_calls = 0
        self._plugin_states: dict[str, object] = {}  # a plugin's own state, by its name

    def plugin_state(self, name: str, kind: type[PluginStateT]) -> PluginStateT:
        """Plugin `name`'s state, a `kind()` made on first use: what its sandbox methods
        remember (e.g. the ordering plugin's trades). It guards itself for threads."""
        with self._lock:
            found = self._plugin_states.setdefault(name, kind())
        if not isinstance(found, kind):
            raise TypeError(f"sandbox state {name!r} is a {type(found).__name__}, not a {kind.__name__}")
        return found

    # --- users -----------------------------------------------------------------------

    def log_in(self, app_id: str, login: str) -> tuple[str, str]:
        """(user_id, open_id) of sandbox login <login> in `app_id`; the open_id is
        remembered so later calls may name the user by it."""
        user_id = sandbox_user_id(login)
        open_id = sandbox_open_id(app_id, user_id)
        with self._lock:
            self._open_ids[(app_id, open_id)] = user_id
        return user_id, open_id

    def user_for_open_id(self, app_id: str, open_id: str) -> str | None:
        with self._lock:
            return self._open_ids.get((app_id, open_id))

    def grant_token(self, app_id: str, access_token: str, user_id: str) -> None:
        """Remember whose an access token oauth.token issued is: methods that take a
        user's auth_token (the member card's) check it names that user."""
        with self._lock:
            self._tokens[(app_id, access_token)] = user_id

    def user_for_token(self, app_id: str, access_token: str) -> str | None:
        with self._lock:
            return self._tokens.get((app_id, access_token))

    # --- merchant vouchers (ordervoucher) --------------------------------------------

    def add_activity(self, activity_id: str, *, stock: int, per_user_limit: int = 1) -> None:
        """A voucher activity, as ordervoucher.create would have made it."""
        with self._lock:
            self._activities[activity_id] = _Activity(stock, per_user_limit)

    def issue_voucher(self, activity_id: str, out_biz_no: str, user_id: str,
                      request: tuple[tuple[str, str], ...]) -> Issued | Refusal:
        """Issue one voucher, or find the one this out_biz_no already issued. `request`
        is the call's business parameters: a repeat must match them."""
        with self._lock:
            activity = self._activities.get(activity_id)
            if activity is None:
                return Refusal.UNKNOWN_ACTIVITY
            earlier = self._issued.get((activity_id, out_biz_no))
            if earlier is not None:
                return earlier if earlier.request == request else Refusal.OUT_BIZ_NO_REUSED
            if activity.issued >= activity.stock:
                return Refusal.STOCK_EXHAUSTED
            if self._per_user.get((activity_id, user_id), 0) >= activity.per_user_limit:
                return Refusal.USER_LIMIT_REACHED
            activity.issued += 1
            self._per_user[(activity_id, user_id)] = self._per_user.get((activity_id, user_id), 0) + 1
            code = hashlib.sha256(f"voucher:{activity_id}:{out_biz_no}".encode()).hexdigest()[:20].upper()
            issued = self._issued[(activity_id, out_biz_no)] = Issued(code, user_id, request)
            return issued

    def issued(self, activity_id: str) -> list[Issued]:
        """Every voucher of the activity issued so far."""
        with self._lock:
            return [v for (aid, _), v in self._issued.items() if aid == activity_id]

    # --- life account follows --------------------------------------------------------

    def set_following(self, app_id: str, user_id: str, following: bool = True) -> None:
        """Make `user_id` follow (or stop following) the life account whose app is `app_id`."""
        with self._lock:
            if following:
                self._follows.add((app_id, user_id))
            else:
                self._follows.discard((app_id, user_id))

    def is_following(self, app_id: str, user_id: str) -> bool:
        with self._lock:
            return (app_id, user_id) in self._follows

    # --- mini-program codes (qrcode.create) ------------------------------------------

    def issue_qrcode(self, app_id: str, request: str) -> str:
        """The name of the code for this app and request (its business parameters as
        text): the same name for the same request, as a repeat gets the same code."""
        name = hashlib.sha256(f"qrcode:{app_id}:{request}".encode()).hexdigest()[:24]
        with self._lock:
            self._qrcode_calls += 1
            self._qrcodes[name] = f"https://qr.alipay.com/sbx{name}"
        return name

    def qrcode_content(self, name: str) -> str | None:
        """What the image of code `name` encodes; None for a code never issued."""
        with self._lock:
            return self._qrcodes.get(name)

    @property
    def qrcode_calls(self) -> int:
        """How many codes qrcode.create has issued (repeats included): what a cache saves."""
        with self._lock:
            return self._qrcode_calls
