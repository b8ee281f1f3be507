"""Pushing a segment to 棋盘密云 as a crowd (docs/alipay-membership-facts.md 3).

棋盘 takes users by OPEN_ID (with the app id) or SHA256_MOBILE, never by the 2088 user
id. So a customer of an app on the OpenID scheme goes by their open_id; a customer known
by user_id goes by the SHA-256 of the mobile the card's claim form gave
(membership_customers.mobile_sha256), and without one is not pushable: counted and
reported, never sent.

The first push creates the crowd (crowd.create with the first 1000 users, then
crowduser.add for the rest) and stores its code (membership_crowds); every push stores
who is in it (membership_crowd_users), batch by batch as Alipay accepts them, so the
next push sends only the difference: crowduser.add for who joined the segment,
crowduser.delete for who left it, 1000 a call. A push that fails half-way leaves the
stored users matching what Alipay holds, and the next push goes on from there.

The crowd's external code is `mpforge-<appid>-<segment id>`: one crowd per app and
segment. Two pushes of one segment at the same moment may both try to create it; Alipay
refuses the second (the external code is taken) and that push answers the refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from builder.serve.alipay_client import CROWD_BATCH, AlipayClient, CrowdUser
from builder.serve.storage import Storage

from .models import MembershipSection, Segment
from .segments import Customer, segment_members
from .tables import CROWD_USERS, CROWDS

UNPUSHABLE_REASON = ("棋盘密云只接受 OPEN_ID 或手机号的 SHA256：以支付宝用户号（2088…）登录、且领卡时未填手机号的会员"
                     "无法推送")


@dataclass(frozen=True)
class Pushed:
    crowd_code: str
    created: bool
    added: int
    removed: int
    in_crowd: int
    unpushable: int


def crowd_user(appid: str, customer: Customer) -> CrowdUser | None:
    """How 棋盘 knows the customer; None when it cannot."""
    if customer.user.kind == "open_id":
        return CrowdUser("OPEN_ID", customer.user.id, appid)
    if customer.mobile_sha256:
        return CrowdUser("SHA256_MOBILE", customer.mobile_sha256.lower())
    return None


def external_code(appid: str, segment: Segment) -> str:
    return f"mpforge-{appid}-{segment.id}"


def _batches(users: Sequence[CrowdUser]) -> Iterable[Sequence[CrowdUser]]:
    for start in range(0, len(users), CROWD_BATCH):
        yield users[start:start + CROWD_BATCH]


def _key(user: CrowdUser) -> tuple[str, str]:
    return user.id_type, user.id


class CrowdStore:
    """The stored crowd of one app's segment."""

    def __init__(self, storage: Storage, appid: str, segment: str) -> None:
        self.storage, self.appid, self.segment = storage, appid, segment

    def crowd_code(self) -> str | None:
        with self.storage.engine.connect() as conn:
            found = conn.execute(select(CROWDS.c.crowd_code).where(CROWDS.c.appid == self.appid,
                                                                   CROWDS.c.segment == self.segment)).first()
            return None if found is None else str(found[0])

    def users(self) -> set[tuple[str, str]]:
        with self.storage.engine.connect() as conn:
            rows = conn.execute(select(CROWD_USERS.c.id_type, CROWD_USERS.c.user_value).where(
                CROWD_USERS.c.appid == self.appid, CROWD_USERS.c.segment == self.segment))
            return {(str(r.id_type), str(r.user_value)) for r in rows}

    def created(self, crowd_code: str, now: datetime) -> None:
        with self.storage.engine.connect() as conn, conn.begin():
            conn.execute(insert(CROWDS).values(appid=self.appid, segment=self.segment, crowd_code=crowd_code,
                                               users=0, pushed_at=now))

    def changed(self, users: Sequence[CrowdUser], *, added: bool) -> None:
        """Record a batch Alipay accepted."""
        keys = [_key(u) for u in users]
        with self.storage.engine.connect() as conn, conn.begin():
            if added:
                conn.execute(insert(CROWD_USERS), [{"appid": self.appid, "segment": self.segment, "id_type": kind,
                                                    "user_value": value} for kind, value in keys])
            else:
                for kind, value in keys:
                    conn.execute(delete(CROWD_USERS).where(
                        CROWD_USERS.c.appid == self.appid, CROWD_USERS.c.segment == self.segment,
                        CROWD_USERS.c.id_type == kind, CROWD_USERS.c.user_value == value))

    def pushed(self, users: int, now: datetime) -> None:
        with self.storage.engine.connect() as conn, conn.begin():
            conn.execute(CROWDS.update().where(CROWDS.c.appid == self.appid, CROWDS.c.segment == self.segment)
                         .values(users=users, pushed_at=now))


def push_segment(storage: Storage, client: AlipayClient, appid: str, section: MembershipSection,
                 segment: Segment, now: datetime) -> Pushed:
    """Make 棋盘's crowd of `segment` hold its pushable customers now. AlipayError and
    AlipayUnavailable pass to the caller, with what was accepted before them stored."""
    wanted: dict[tuple[str, str], CrowdUser] = {}
    unpushable = 0
    for customer in segment_members(storage, appid, section, segment, now):
        user = crowd_user(appid, customer)
        if user is None:
            unpushable += 1
        else:
            wanted[_key(user)] = user
    store = CrowdStore(storage, appid, segment.id)
    code = store.crowd_code()
    created = code is None
    held = store.users()
    joining = [user for key, user in sorted(wanted.items()) if key not in held]
    leaving = [CrowdUser(kind, value, appid if kind == "OPEN_ID" else None)
               for kind, value in sorted(held - wanted.keys())]
    if code is None:
        if not joining:
            raise NothingToPush(unpushable)
        first = joining[:CROWD_BATCH]
        code = client.qipan_crowd_create(name=segment.name, external_code=external_code(appid, segment), users=first,
                                         description=segment.description)
        store.created(code, now)
        store.changed(first, added=True)
        joining = joining[CROWD_BATCH:]
    for batch in _batches(joining):
        client.qipan_crowd_add(code, batch)
        store.changed(batch, added=True)
    for batch in _batches(leaving):
        client.qipan_crowd_delete(code, batch)
        store.changed(batch, added=False)
    store.pushed(len(wanted), now)
    added = len(wanted.keys() - held)
    return Pushed(code, created, added, len(leaving), len(wanted), unpushable)


class NothingToPush(Exception):
    """The segment has no pushable customer and no crowd yet: nothing to create."""

    def __init__(self, unpushable: int) -> None:
        super().__init__(f"{unpushable} unpushable")
        self.unpushable = unpushable
