"""make demo signs people in to the pages: one demo user per role, with a password only its owner can read."""

import stat

from umrisk.demo import DEMO_USERS, demo_users
from umrisk.serving.cases.db import database_url
from umrisk.serving.cases.repository import CaseStore
from umrisk.serving.ui.users import check_password


def test_a_demo_user_per_role_signs_in_and_the_file_is_private(tmp_path):
    made = demo_users(tmp_path)
    assert {role for _, role, _ in made.values()} == {role for role, _ in DEMO_USERS.values()}
    listed = tmp_path / "service" / "demo-users.txt"
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    cases = CaseStore.open(database_url(None, tmp_path))
    try:
        for name, role, password in made.values():
            assert len(password) >= 12 and password in listed.read_text()
            assert check_password(cases, name, password).role == role
            assert check_password(cases, name, password + "x") is None
    finally:
        cases.dispose()
