"""The built-in user list: salted scrypt hashes, constant-time checks, the hash CLI."""

from __future__ import annotations

import hmac
import time

import pytest

from core import users
from core.users import LOCAL, User, UserList, hash_password, verify_password


def test_the_right_password_matches_and_a_wrong_one_does_not():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("", stored)
    assert not verify_password("CORRECT HORSE", stored)


def test_each_hash_has_its_own_salt():
    first, second = hash_password("same"), hash_password("same")
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]  # the salts differ
    assert verify_password("same", first) and verify_password("same", second)


def test_malformed_hashes_match_nothing():
    for stored in ["", "plain", "md5$x$y", "scrypt$1$8$1$AA$AA", "scrypt$16384$8$1$!!$!!", "scrypt$x$8$1$AA$AA"]:
        assert not verify_password("anything", stored)


def test_the_comparison_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(users.hmac, "compare_digest", spy)
    stored = hash_password("secret")
    assert not verify_password("wrong", stored)
    assert verify_password("secret", stored)
    assert len(calls) == 2


def test_the_user_list_authenticates_and_keeps_roles():
    listed = UserList(
        {
            "alice": {"password_hash": hash_password("a-pass"), "role": "admin"},
            "bob": {"password_hash": hash_password("b-pass")},
        }
    )
    assert listed.names() == ["alice", "bob"]
    assert listed.authenticate("alice", "a-pass") == User("alice", "admin")
    assert listed.authenticate("bob", "b-pass") == User("bob", "user")
    assert listed.authenticate("bob", "a-pass") is None
    assert listed.authenticate("carol", "a-pass") is None  # unknown user: compared with a decoy, still no


def test_an_unknown_name_takes_about_as_long_as_a_wrong_password():
    listed = UserList({"alice": {"password_hash": hash_password("a-pass")}})

    def timed(name):
        start = time.perf_counter()
        listed.authenticate(name, "wrong")
        return time.perf_counter() - start

    known, unknown = min(timed("alice") for _ in range(3)), min(timed("nobody") for _ in range(3))
    assert unknown > known / 3  # a real scrypt ran for the unknown name too


@pytest.mark.parametrize(
    "entry", [{"password_hash": "plain-text"}, {"password_hash": hash_password("x"), "role": "root"}]
)
def test_bad_entries_are_refused_with_the_user_named(entry):
    with pytest.raises(ValueError, match="mallory"):
        UserList({"mallory": entry})


def test_failed_logins_are_slowed_more_each_time_up_to_a_limit():
    assert users.failed_login_delay(1) == users.FAILED_LOGIN_DELAY_S
    assert users.failed_login_delay(2) > users.failed_login_delay(1)
    assert users.failed_login_delay(100) == users.FAILED_LOGIN_MAX_S


def test_local_is_the_nameless_administrator():
    assert LOCAL.is_local and LOCAL.is_admin
    assert not User("bob").is_admin and not User("bob").is_local


def test_the_cli_prints_lines_that_the_user_list_accepts(monkeypatch, capsys):
    import tomllib

    answers = iter(["s3cret", "s3cret"])
    monkeypatch.setattr(users.getpass, "getpass", lambda prompt="": next(answers))
    assert users.main(["hash", "--user", "alice", "--role", "admin"]) == 0
    printed = capsys.readouterr().out
    table = tomllib.loads(printed)["kba_users"]
    assert UserList(table).authenticate("alice", "s3cret") == User("alice", "admin")


def test_the_cli_refuses_passwords_that_differ(monkeypatch, capsys):
    answers = iter(["one", "two"])
    monkeypatch.setattr(users.getpass, "getpass", lambda prompt="": next(answers))
    assert users.main(["hash", "--user", "bob"]) == 1
    assert capsys.readouterr().out == ""
