"""Logins through an OpenID Connect provider (KBA_AUTH=oidc), as far as they go without one:
the [auth] configuration, the st.login redirect, and st.user once the provider has answered.
"""

from __future__ import annotations

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ENTRY

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-real-secret",
    "client_id": "kba",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration",
}


@pytest.fixture
def oidc(app_env, monkeypatch):
    """KBA_AUTH=oidc; st.login records its calls instead of redirecting to a provider."""
    monkeypatch.setenv("KBA_AUTH", "oidc")
    calls = []
    monkeypatch.setattr(streamlit, "login", lambda provider=None: calls.append(provider))
    return calls


def _session(user: dict, *, auth: dict | None = AUTH) -> AppTest:
    at = AppTest.from_file(str(ENTRY), default_timeout=60)
    at.secrets["unused"] = "set so that no developer secrets.toml is read"
    if auth is not None:
        at.secrets["auth"] = auth
    at.session_state["lang"] = "en"
    at.user = user
    return at


def _shown(at: AppTest) -> list[str]:
    return [e.value for kind in ("title", "markdown", "caption", "info", "error") for e in getattr(at, kind)]


def test_without_an_auth_table_it_says_what_to_configure_and_shows_nothing_else(oidc):
    at = _session({"is_logged_in": False}, auth=None).run()
    assert not at.exception
    assert any("[auth] table" in e.value for e in at.error)
    assert not at.button and not oidc


def test_before_logging_in_only_the_login_button_shows_and_it_calls_st_login(oidc):
    at = _session({"is_logged_in": False}).run()
    assert not at.exception
    assert [b.key for b in at.button] == ["auth.oidc"]
    assert _shown(at) == [
        "Local Knowledge Assistant",
        "This app is shared: log in to see your knowledge bases and conversations.",
    ]
    at.button(key="auth.oidc").click().run()
    assert oidc == [None]  # redirected to the provider configured in [auth]
    at.switch_page("pages/knowledge.py").run()  # a deep link: still only the login
    assert [b.key for b in at.button] == ["auth.oidc"]


def test_once_the_provider_answered_the_user_is_in_by_their_e_mail(oidc, monkeypatch):
    at = _session({"is_logged_in": True, "email": "carol@example.com", "sub": "123"}).run()
    assert not at.exception
    assert "Logged in as **carol@example.com** (user)" in _shown(at)
    at.switch_page("pages/models.py").run()
    assert any("Only administrators" in e.value for e in at.info)

    monkeypatch.setenv("KBA_ADMINS", '["carol@example.com"]')
    from core.settings import get_settings
    from ui.common import services

    get_settings.cache_clear()
    services.clear()
    admin = _session({"is_logged_in": True, "email": "carol@example.com"}).run()
    assert "Logged in as **carol@example.com** (administrator)" in _shown(admin)
