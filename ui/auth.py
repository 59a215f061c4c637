"""Logins: the gate every page passes, the login form, and who is logged in.

``KBA_AUTH`` chooses the mode (:class:`core.settings.Settings`): ``none`` lets everyone in as
the one local administrator, ``users`` checks the built-in list in the secrets, ``oidc`` uses
Streamlit's ``st.login``. Permissions themselves are decided in :mod:`core.access`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from core import users
from core.services import Services
from core.users import LOCAL, User, UserList
from ui import keys
from ui.common import services, t


def _user_entries() -> dict[str, dict[str, Any]]:
    table = st.secrets.get("kba_users", {})
    return {str(name): dict(entry) for name, entry in table.items() if isinstance(entry, Mapping)}


def _oidc_configured() -> bool:
    return "auth" in st.secrets


def _oidc_user() -> User:
    claims = st.user
    name = str(claims.get("email") or claims.get("sub") or "")
    role = "admin" if name in services().settings.admins else "user"
    return User(name, role)


def current_user() -> User | None:
    """The logged-in user (:data:`LOCAL` with logins off), or None before logging in.

    With the built-in list, the name kept in the session is looked up again on every run, so
    a user taken off the list, or given another role, is so at once.
    """
    mode = services().settings.auth
    if mode == "none":
        return LOCAL
    if mode == "oidc":
        return _oidc_user() if _oidc_configured() and st.user.get("is_logged_in") else None
    name = st.session_state.get(keys.AUTH_USER)
    entry = _user_entries().get(name) if isinstance(name, str) and name else None
    return User(name, "admin" if entry.get("role") == "admin" else "user") if entry else None


def acting() -> Services:
    """The services as the logged-in user may use them, with who is logged in (and the logout
    button) in the sidebar; before logging in, the login form instead of the page.
    """
    user = current_user()
    if user is None:  # a page reached without Home.py's gate (Streamlit's own routing of a page file)
        _login_page()
        st.stop()
    with st.sidebar:
        account_sidebar(user)
    return services().as_user(user)


def gate(pages: list[st.Page]) -> User | None:
    """The logged-in user, or None after drawing the login (and nothing else): then the caller
    must not run the page.

    The navigation is set up with the same ``pages`` either way, hidden before logging in, so a
    deep link to a page shows the login first and that page once logged in.
    """
    user = current_user()
    if user is None:
        st.navigation(pages, position="hidden")
        _login_page()
    return user


def _login_page() -> None:
    st.title(t("app.title"))
    if services().settings.auth == "oidc":
        _oidc_login()
    else:
        _login_form()


def _oidc_login() -> None:
    if not _oidc_configured():
        st.error(t("auth.oidc.missing"), icon="⚠️")
        return
    st.write(t("auth.oidc.intro"))
    st.button(t("auth.oidc.button"), key=keys.AUTH_OIDC, type="primary", on_click=st.login)


def _login_form() -> None:
    entries = _user_entries()
    if not entries:
        st.error(t("auth.users.missing"), icon="⚠️")
        return
    with st.form(keys.AUTH_FORM):
        st.subheader(t("auth.header"))
        st.text_input(t("auth.name"), key=keys.AUTH_NAME)
        st.text_input(t("auth.password"), type="password", key=keys.AUTH_PASSWORD)
        # Checked in the callback, before the run: a good login draws every page in this same run.
        st.form_submit_button(t("auth.submit"), type="primary", on_click=_check_login, args=(entries,))
    if problem := st.session_state.get(keys.AUTH_PROBLEM):
        st.error(problem, icon="⚠️")


def _check_login(entries: dict[str, dict[str, Any]]) -> None:
    state = st.session_state
    name, password = str(state.get(keys.AUTH_NAME, "")).strip(), str(state.get(keys.AUTH_PASSWORD, ""))
    state[keys.AUTH_PASSWORD] = ""  # not kept in the session
    try:
        user = UserList(entries).authenticate(name, password)
    except ValueError as problem:  # a malformed entry: say which, to whoever runs the app
        state[keys.AUTH_PROBLEM] = t("auth.users.bad", detail=str(problem))
        return
    if user is None:
        failures = state.get(keys.AUTH_FAILURES, 0) + 1
        state[keys.AUTH_FAILURES] = failures
        users.slow_down(failures)
        state[keys.AUTH_PROBLEM] = t("auth.failed")
        return
    for key in (keys.AUTH_FAILURES, keys.AUTH_PROBLEM):
        state.pop(key, None)
    state[keys.AUTH_USER] = user.name


def account_sidebar(user: User) -> None:
    """Who is logged in, and the logout button (nothing with logins off)."""
    if user.is_local:
        return
    st.caption(t("auth.who", name=user.name, role=t(f"auth.role.{user.role}")))
    st.button(t("auth.logout"), key=keys.AUTH_LOGOUT, icon=":material/logout:", on_click=_logout)


def _logout() -> None:
    if services().settings.auth == "oidc":
        st.logout()
        return
    # What names this user's things goes too, so the next one to log in here starts afresh.
    for key in (keys.AUTH_USER, keys.KB_PICK, keys.EVAL_KB, keys.CHAT_KBS, keys.CHAT_CONVERSATION):
        st.session_state.pop(key, None)
