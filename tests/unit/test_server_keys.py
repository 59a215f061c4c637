"""A model server's API key comes only from a variable the configuration allows for that server;
no other variable is read, and no key goes to another address."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from core.credentials import allowed_variables, key_status, origin
from core.errors import InvalidEndpoint, ServerKeyNotAllowed
from core.models.custom import row_for_endpoint
from core.models.remote import api_key

ALLOWED = {"https://api.example.com": "EXAMPLE_KEY", "http://localhost:8000": ["LOCAL_KEY", "LOCAL_KEY_2"]}


class Environment(Mapping):
    """An environment that records which variables were read."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.read.append(name)
        return self.values[name]

    def __iter__(self):
        raise AssertionError("the whole environment must never be listed")

    def __len__(self) -> int:
        return len(self.values)


ENV = {"EXAMPLE_KEY": "sk-example", "LOCAL_KEY_2": "sk-local", "AWS_SECRET_ACCESS_KEY": "aws-secret"}


def test_the_key_allowed_for_a_server_is_sent_to_it():
    env = Environment(ENV)
    assert api_key(row_for_endpoint("https://api.example.com/v1", "m"), ALLOWED, env) == "sk-example"
    assert api_key(row_for_endpoint("https://API.example.com:443/v1/", "m"), ALLOWED, env) == "sk-example"
    # The first allowed variable that is set.
    assert api_key(row_for_endpoint("http://localhost:8000/v1", "m"), ALLOWED, env) == "sk-local"
    assert set(env.read) == {"EXAMPLE_KEY", "LOCAL_KEY", "LOCAL_KEY_2"}


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/v1",  # the same host without encryption
        "https://api.example.com:8443/v1",
        "https://api.example.com.attacker.net/v1",
        "https://attacker.net/api.example.com/v1",
        "http://localhost:8001/v1",
        "http://127.0.0.1:8000/v1",
    ],
)
def test_no_key_goes_to_another_address(url):
    env = Environment(ENV)
    assert api_key(row_for_endpoint(url, "m"), ALLOWED, env) == "not-needed"
    assert env.read == []


def test_a_variable_not_allowed_for_the_server_is_refused_and_never_read():
    env = Environment(ENV)
    for url, variable in [
        ("https://attacker.net/v1", "AWS_SECRET_ACCESS_KEY"),
        ("https://attacker.net/v1", "EXAMPLE_KEY"),  # allowed, but for another server
        ("https://api.example.com/v1", "AWS_SECRET_ACCESS_KEY"),
    ]:
        with pytest.raises(ServerKeyNotAllowed) as caught:
            api_key(row_for_endpoint(url, "m", api_key_env=variable), ALLOWED, env)
        assert "KBA_SERVER_KEYS" in str(caught.value) and "KBA_SERVER_KEYS" in caught.value.message("zh")
    assert env.read == []


def test_a_row_may_pick_one_of_the_allowed_variables():
    env = Environment(ENV)
    row = row_for_endpoint("http://localhost:8000/v1", "m", api_key_env="LOCAL_KEY")
    assert api_key(row, ALLOWED, env) == "not-needed"  # picked, but not set
    assert env.read == ["LOCAL_KEY"]


def test_nothing_configured_reads_nothing():
    env = Environment(ENV)
    assert api_key(row_for_endpoint("https://api.example.com/v1", "m"), {}, env) == "not-needed"
    assert env.read == []


def test_the_page_learns_which_servers_have_a_key_not_the_keys():
    assert key_status(ALLOWED, Environment(ENV)) == {"https://api.example.com": True, "http://localhost:8000": True}
    assert key_status(ALLOWED, Environment({})) == {"https://api.example.com": False, "http://localhost:8000": False}


def test_servers_are_told_apart_by_scheme_host_and_port():
    assert origin("api.example.com") == origin("https://api.example.com:443/v1") == "https://api.example.com"
    assert origin("http://[::1]:8000/v1") == "http://[::1]:8000"
    assert origin("ftp://api.example.com") is None and origin("https://host:notaport") is None
    assert allowed_variables(ALLOWED, "https://user:pw@api.example.com/v1") == ["EXAMPLE_KEY"]


def test_an_address_holding_a_key_is_refused_without_showing_it():
    with pytest.raises(InvalidEndpoint) as caught:
        row_for_endpoint("https://user:sk-secret@api.example.com/v1", "m")
    assert "sk-secret" not in str(caught.value) and "KBA_SERVER_KEYS" in str(caught.value)
