"""API keys for the HTTP API and the MCP server while logins are on."""

from __future__ import annotations

import stat

import pytest

from core.api import cli
from core.api.keys import ApiKeys, KeyRefused, bearer, caller
from core.settings import Settings
from core.users import LOCAL, User


def test_a_key_names_its_user_and_only_its_digest_is_kept(tmp_path):
    keys = ApiKeys(tmp_path)
    row, key = keys.add("alice", "admin")
    assert key.startswith("kba-") and len(key) > 40
    assert keys.user_for(key) == User("alice", "admin")
    stored = keys.path.read_text()
    assert key not in stored and row.sha256 in stored
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    assert keys.user_for(key + "x") is None and keys.user_for(None) is None


def test_revoking_by_user_or_id_forgets_the_keys(tmp_path):
    keys = ApiKeys(tmp_path)
    first, one = keys.add("bob")
    _, two = keys.add("bob")
    assert keys.revoke(first.id) == 1 and keys.user_for(one) is None and keys.user_for(two) == User("bob")
    assert keys.revoke("bob") == 1 and keys.user_for(two) is None and keys.revoke("bob") == 0


def test_a_bad_role_or_empty_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="role"):
        ApiKeys(tmp_path).add("carol", "root")
    with pytest.raises(ValueError, match="user name"):
        ApiKeys(tmp_path).add("  ")


def test_no_key_is_needed_with_logins_off_and_one_is_with_logins_on(tmp_path):
    assert caller(Settings(data_dir=tmp_path), None) == LOCAL
    on = Settings(data_dir=tmp_path, auth="users")
    with pytest.raises(KeyRefused, match=r"python -m core\.api keys add"):
        caller(on, None)
    _, key = ApiKeys(tmp_path).add("dave")
    assert caller(on, key) == User("dave")


def test_the_bearer_header_is_read_whatever_its_case():
    assert bearer({"authorization": "Bearer kba-abc"}) == "kba-abc"
    assert bearer({"authorization": "bearer  kba-abc "}) == "kba-abc"
    assert bearer({"authorization": "Basic xyz"}) is None and bearer({}) is None


def test_the_keys_command_prints_a_key_once_that_then_works(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KBA_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(data_dir=tmp_path))
    assert cli.main(["keys", "add", "erin", "--role", "admin"]) == 0
    key = capsys.readouterr().out.strip()
    assert ApiKeys(tmp_path).user_for(key) == User("erin", "admin")
    assert cli.main(["keys", "list"]) == 0 and "erin  admin" in capsys.readouterr().out
    assert cli.main(["keys", "revoke", "erin"]) == 0 and ApiKeys(tmp_path).user_for(key) is None
