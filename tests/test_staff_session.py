"""The merchant pages' roles (builder/serve/staff_session.py): a manager's session may use
staff pages, a staff session not a manager's page, and each role's token signs its own
sessions only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from builder.serve.replies import ApiError
from builder.serve.staff_session import COOKIE, issue, require_role, role_token, session_role

APPID = "2021000000000001"
STAFF = "staff-token-for-the-tests-0123456789abc"
MANAGER = "manager-token-for-the-tests-0123456789a"
NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)


def request_with(cookie: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"MPFORGE_STAFF_TOKEN_{APPID}", STAFF)
    monkeypatch.setenv(f"MPFORGE_MANAGER_TOKEN_{APPID}", MANAGER)


def test_a_manager_may_use_staff_pages_and_staff_not_the_managers() -> None:
    manager, staff = issue(APPID, "manager", MANAGER, NOW), issue(APPID, "staff", STAFF, NOW)
    assert require_role(request_with(manager), APPID, "staff", NOW) == "manager"
    assert require_role(request_with(manager), APPID, "manager", NOW) == "manager"
    assert require_role(request_with(staff), APPID, "staff", NOW) == "staff"
    with pytest.raises(ApiError) as refused:
        require_role(request_with(staff), APPID, "manager", NOW)
    assert (refused.value.status, refused.value.detail.code) == (403, "manager_only")


def test_a_session_is_signed_by_its_roles_token_only(monkeypatch: pytest.MonkeyPatch) -> None:
    staff = issue(APPID, "staff", STAFF, NOW)
    # A staff cookie whose payload is edited to say manager no longer verifies.
    version, _, mac = staff.split(".")
    says_manager = issue(APPID, "manager", STAFF, NOW).split(".")[1]
    assert session_role(f"{version}.{says_manager}.{mac}", APPID, NOW) is None
    # Signed with the staff token but claiming manager: the manager's token does not verify it.
    assert session_role(issue(APPID, "manager", STAFF, NOW), APPID, NOW) is None
    assert session_role(staff, APPID, NOW + timedelta(hours=12)) is None  # expired
    assert session_role(staff, "2021000000000002", NOW) is None  # another app
    manager = issue(APPID, "manager", MANAGER, NOW)
    monkeypatch.setenv(f"MPFORGE_MANAGER_TOKEN_{APPID}", MANAGER + "-rotated")
    assert session_role(manager, APPID, NOW) is None  # the manager's token rotated ...
    assert session_role(staff, APPID, NOW) == "staff"  # ... and staff stay logged in


def test_a_page_of_a_role_without_a_token_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(f"MPFORGE_MANAGER_TOKEN_{APPID}")
    with pytest.raises(ApiError) as off:
        require_role(request_with(""), APPID, "manager", NOW)
    assert (off.value.status, off.value.detail.code) == (403, "staff_login_disabled")
    assert f"set MPFORGE_MANAGER_TOKEN_{APPID}" in str(off.value)
    assert role_token(APPID, "manager") is None
    monkeypatch.setenv(f"MPFORGE_MANAGER_TOKEN_{APPID}", "short")
    with pytest.raises(ApiError, match="has 5 characters; it needs at least 32"):
        role_token(APPID, "manager")
