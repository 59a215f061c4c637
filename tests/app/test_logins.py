"""Logins with the built-in user list (KBA_AUTH=users): the gate, the form, and what one user
can never reach of another's, also not through the session state a deep link would set.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import users
from core.users import User, hash_password
from tests.app.conftest import ENTRY
from ui.common import services

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}
ROLES = {"alice": "user", "bob": "user", "root": "admin"}
EMBEDDING = "multilingual-e5-small-q4"


@pytest.fixture
def logins(app_env, monkeypatch):
    """Logins on, three listed users; failed logins record their wait instead of sleeping."""
    monkeypatch.setenv("KBA_AUTH", "users")
    waits = []
    monkeypatch.setattr(users, "_sleep", waits.append)
    table = {name: {"password_hash": hash_password(pw), "role": ROLES[name]} for name, pw in PASSWORDS.items()}
    return table, waits


def _session(table, *, as_user: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ENTRY), default_timeout=60)
    at.secrets["kba_users"] = table
    at.session_state["lang"] = "en"
    if as_user:
        _login(at.run(), as_user)
    return at


def _login(at: AppTest, name: str, password: str | None = None) -> AppTest:
    at.text_input(key="auth.name").input(name)
    at.text_input(key="auth.password").input(password or PASSWORDS[name])
    return at.button[0].click().run()  # the form's submit button


def _texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "success", "error", "title", "subheader")
        for e in getattr(at, kind)
    ]
    parts += [str(o) for box in at.selectbox for o in box.options] + [
        str(o) for box in at.multiselect for o in box.options
    ]
    return "\n".join(str(p) for p in parts)


def test_logins_off_shows_no_login_and_no_account(app):
    assert not app.exception
    assert not [t for t in app.text_input if t.key == "auth.password"]
    assert not [b for b in app.button if b.key == "auth.logout"]


def test_nothing_but_the_form_shows_until_logged_in(logins):
    table, waits = logins
    at = _session(table).run()
    assert not at.exception
    assert [t.key for t in at.text_input] == ["auth.name", "auth.password"]
    assert "Chat with your own documents" not in _texts(at)  # no page ran
    at.switch_page("pages/knowledge.py").run()  # a deep link to a page: still only the form
    assert [t.key for t in at.text_input] == ["auth.name", "auth.password"]
    assert _texts(at) == "Local Knowledge Assistant\nLog in"  # the title and the form, nothing of the page

    _login(at, "alice", "wrong")
    assert "Wrong user name or password." in _texts(at)
    _login(at, "nobody", "alice-pw")
    assert len(waits) == 2 and waits[1] > waits[0] > 0  # failed attempts are slowed, more each time

    _login(at, "alice")
    assert not at.exception
    assert "Knowledge bases" in _texts(at)  # the page the deep link named, once logged in
    assert not [t for t in at.text_input if t.key == "auth.password"]


def test_the_sidebar_says_who_is_logged_in_and_logs_out(logins):
    table, _ = logins
    at = _session(table).run()
    _login(at, "root")
    assert not at.exception
    assert "Logged in as **root** (administrator)" in _texts(at)
    at.button(key="auth.logout").click().run()
    assert [t.key for t in at.text_input] == ["auth.name", "auth.password"]
    assert "auth.user" not in at.session_state


def test_a_second_user_cannot_see_or_open_the_first_users_knowledge_base_or_conversation(logins):
    table, _ = logins
    alice = _session(table, as_user="alice")
    alice.switch_page("pages/knowledge.py").run()
    alice.text_input(key="kb.new_name").input("alice secrets").run()
    alice.button(key="kb.create").click().run()
    assert alice.selectbox(key="kb.pick").value == "alice secrets"
    hers = services().as_user(User("alice")).conversations.create("alice's private chat")

    bob = _session(table, as_user="bob")
    # What a deep link or an edited session would carry: alice's knowledge base and conversation.
    bob.session_state["kb.pick"] = "alice secrets"
    bob.session_state["eval.kb"] = "alice secrets"
    bob.session_state["chat.kbs"] = ["alice secrets"]
    bob.session_state["chat.conversation"] = hers.id
    bob.query_params["kb"] = "alice secrets"
    for page in ("pages/knowledge.py", "pages/evaluate.py", "pages/chat.py", "pages/start.py"):
        bob.switch_page(page).run()
        assert not bob.exception, page
        assert "alice secrets" not in _texts(bob), page
        assert "alice's private chat" not in _texts(bob), page
    assert bob.session_state["chat.conversation"] != hers.id

    root = _session(table, as_user="root")  # an administrator sees every knowledge base
    root.switch_page("pages/knowledge.py").run()
    assert "alice secrets" in root.selectbox(key="kb.pick").options
    root.switch_page("pages/chat.py").run()
    assert "alice's private chat" not in _texts(root)  # but conversations stay their user's


def test_sharing_read_only_lets_others_read_but_not_change(logins):
    table, _ = logins
    alice = _session(table, as_user="alice")
    alice.switch_page("pages/knowledge.py").run()
    alice.text_input(key="kb.new_name").input("team notes").run()
    alice.button(key="kb.create").click().run()
    kb = services().knowledge.get("team notes")
    alice.button_group(key=f"kb.sharing.{kb.id}").set_value("read").run()
    assert services().knowledge.get("team notes").sharing == "read"

    bob = _session(table, as_user="bob")
    bob.switch_page("pages/knowledge.py").run()
    assert not bob.exception
    assert bob.selectbox(key="kb.pick").value == "team notes"
    assert "shared with you read-only" in _texts(bob)
    assert not [b for b in bob.button if b.key in {"kb.rename", "kb.delete_yes", "kb.ingest.folder"}]


def test_a_user_sees_the_model_catalog_read_only_and_cannot_download_or_load(logins):
    table, _ = logins
    bob = _session(table, as_user="bob")
    bob.switch_page("pages/models.py").run()
    assert not bob.exception
    assert "Only administrators download, load and unload models" in _texts(bob)
    assert not [b for b in bob.button if b.key and b.key.startswith(("models.", "emb."))]
    assert "Serve with an engine" not in [e.label for e in bob.expander]

    root = _session(table, as_user="root")
    root.switch_page("pages/models.py").run()
    assert not root.exception
    assert "Only administrators" not in _texts(root)
    assert [b for b in root.button if b.key and b.key.startswith("models.")]
    assert "Serve with an engine" in [e.label for e in root.expander]
