"""Permissions: the one helper's table, and the services each user gets checking it on every call."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from core import access
from core.errors import AdminOnly, ConversationNotFound, NotPermitted
from core.evaluation import EvalRun
from core.knowledge.records import KnowledgeBase, Records
from core.knowledge.splitting import SplitterSettings
from core.services import build_services
from core.users import LOCAL, User

EMBEDDING = "multilingual-e5-small-q4"
OWNER, OTHER, ADMIN = User("alice"), User("bob"), User("root", "admin")


def _kb(sharing: str, owner: str | None = "alice") -> KnowledgeBase:
    return KnowledgeBase("kb-1", "notes", EMBEDDING, {}, 0.0, 0.0, owner, sharing)


# sharing -> what OTHER may do; the owner and an administrator may do everything.
TABLE = {
    "private": set(),
    "read": {"read"},
    "edit": {"read", "edit"},
}


@pytest.mark.parametrize("sharing", list(TABLE))
@pytest.mark.parametrize("action", ["read", "edit", "manage"])
def test_the_permission_table(sharing, action):
    kb = _kb(sharing)
    assert access.allowed(OWNER, kb, action)
    assert access.allowed(ADMIN, kb, action)
    assert access.allowed(LOCAL, kb, action)  # logins off: everything, as before
    assert access.allowed(OTHER, kb, action) == (action in TABLE[sharing])


@pytest.mark.parametrize("action", ["read", "edit"])
def test_a_base_of_nobody_is_shared_editable_but_only_administrators_manage_it(action):
    kb = _kb("edit", owner=None)
    assert access.allowed(OTHER, kb, action)
    assert not access.allowed(OTHER, kb, "manage")
    assert access.allowed(ADMIN, kb, "manage")


def test_a_denial_is_a_typed_error_in_both_languages():
    with pytest.raises(NotPermitted) as caught:
        access.check(OTHER, _kb("read"), "edit")
    assert "may not edit knowledge base 'notes'" in str(caught.value)
    assert "shared read-only" in str(caught.value)
    assert "无权修改" in caught.value.message("zh") and "只读共享" in caught.value.message("zh")
    with pytest.raises(AdminOnly) as caught:
        access.require_admin(OTHER, "download models")
    assert "下载模型" in caught.value.message("zh")


@pytest.fixture
def app(settings, fake_embeddings):
    return build_services(settings, embedding_builder=lambda spec, batch, folder: fake_embeddings)


def test_logins_off_changes_nothing(app):
    assert app.as_user(LOCAL) is app
    kb = app.knowledge.create("notes", EMBEDDING, SplitterSettings())
    assert kb.owner is None and kb.sharing == "edit"


def test_each_user_sees_and_opens_only_what_they_may(app):
    alice, bob, root = app.as_user(OWNER), app.as_user(OTHER), app.as_user(ADMIN)
    mine = alice.knowledge.create("alice notes", EMBEDDING, SplitterSettings())
    assert (mine.owner, mine.sharing) == ("alice", "private")
    assert [k.name for k in alice.knowledge.all()] == ["alice notes"]
    assert bob.knowledge.all() == []
    assert [k.name for k in root.knowledge.all()] == ["alice notes"]
    with pytest.raises(NotPermitted):
        bob.knowledge.get("alice notes")  # the name a deep link would carry
    for call in (bob.knowledge.stats, bob.knowledge.chunk_table, bob.knowledge.sources, bob.knowledge.repair):
        with pytest.raises(NotPermitted):
            call(mine)  # a KnowledgeBase object got some other way is checked too
    with pytest.raises(NotPermitted):
        bob.knowledge.delete(mine)
    with pytest.raises(NotPermitted):
        bob.start_rebuild(mine)

    alice.knowledge.set_access(mine, "alice", "read")
    assert [k.name for k in bob.knowledge.all()] == ["alice notes"]
    shared = bob.knowledge.get("alice notes")
    assert bob.knowledge.stats(shared).chunks == 0
    with pytest.raises(NotPermitted):
        bob.knowledge.repair(shared)
    with pytest.raises(NotPermitted):
        bob.start_evaluation(shared, [], None, "set")  # runs follow the base: editing needed

    alice.knowledge.set_access(mine, "alice", "edit")
    bob.knowledge.repair(shared)  # now allowed
    with pytest.raises(NotPermitted):
        bob.knowledge.rename(shared, "mine now")
    with pytest.raises(NotPermitted):
        bob.knowledge.set_access(shared, "alice", "private")
    with pytest.raises(AdminOnly):
        alice.knowledge.set_access(mine, "bob", "edit")  # giving it away is for administrators
    assert root.knowledge.set_access(mine, "bob", "edit").owner == "bob"


def test_a_stale_copy_does_not_keep_a_right_that_was_taken_back(app):
    alice, bob = app.as_user(OWNER), app.as_user(OTHER)
    kb = alice.knowledge.create("notes", EMBEDDING, SplitterSettings())
    alice.knowledge.set_access(kb, "alice", "edit")
    copy = bob.knowledge.get("notes")
    alice.knowledge.set_access(kb, "alice", "private")
    with pytest.raises(NotPermitted):
        bob.knowledge.stats(copy)


def test_conversations_belong_to_their_user(app):
    alice, bob = app.as_user(OWNER), app.as_user(OTHER)
    hers = alice.conversations.create("alice's")
    assert [c.id for c in alice.conversations.all()] == [hers.id]
    assert bob.conversations.all() == []
    with pytest.raises(ConversationNotFound):
        bob.conversations.get(hers.id)  # the id a deep link or session state would carry
    with pytest.raises(ConversationNotFound):
        bob.conversations.rename(hers.id, "taken")
    bob.conversations.delete(hers.id)  # nothing of hers to delete
    assert alice.conversations.get(hers.id).title == "alice's"
    assert app.conversations.all() == []  # not among the logins-off conversations either


def test_models_are_for_administrators(app):
    bob, root = app.as_user(OTHER), app.as_user(ADMIN)
    for call in (
        lambda: bob.start_download("smollm2-135m-instruct"),
        lambda: bob.start_load("smollm2-135m-instruct"),
        lambda: bob.delete_model_files("smollm2-135m-instruct"),
        lambda: bob.models.unload(),
        lambda: bob.catalog.remove("smollm2-135m-instruct"),
        lambda: bob.start_server("vllm", "smollm2-135m-instruct", 8000, 0.9, 4096),
        lambda: bob.servers.start("vllm", bob.catalog.get("qwen2-7b-instruct"), Path("m"), 8000, 0.9, 4096),
        lambda: bob.servers.stop("any"),
    ):
        with pytest.raises(AdminOnly):
            call()
    assert bob.catalog.all() and bob.models.current is None and bob.servers.all() == []  # reading passes
    assert root.models.unload() is None


def test_evaluation_runs_follow_their_base(app):
    alice, bob = app.as_user(OWNER), app.as_user(OTHER)
    kb = alice.knowledge.create("notes", EMBEDDING, SplitterSettings())
    app.evaluations.save_run(EvalRun("run1", "notes", "set", {}, time.time()))
    assert [r.id for r in alice.evaluations.runs()] == ["run1"]
    assert bob.evaluations.runs() == []
    with pytest.raises(NotPermitted):
        bob.evaluations.delete_run("run1")
    alice.knowledge.set_access(kb, "alice", "read")
    assert [r.id for r in bob.evaluations.runs()] == ["run1"]
    with pytest.raises(NotPermitted):
        bob.evaluations.delete_run("run1")
    alice.evaluations.delete_run("run1")
    assert app.evaluations.runs() == []


def test_bases_made_before_logins_belong_to_nobody_and_stay_shared_editable(tmp_path):
    path = tmp_path / "knowledge.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE kb (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, embedding TEXT NOT NULL, "
        "splitter TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL)"
    )
    db.execute("INSERT INTO kb VALUES ('kb-old', 'old', ?, '{}', 0, 0)", (EMBEDDING,))
    db.commit()
    db.close()
    old = Records(path).kb_by_id("kb-old")
    assert (old.owner, old.sharing) == (None, "edit")
    assert access.allowed(OTHER, old, "edit") and not access.allowed(OTHER, old, "manage")


def test_only_a_user_who_may_edit_a_knowledge_base_cancels_its_job(app):
    mine = app.as_user(OWNER).knowledge.create("alice notes", EMBEDDING, SplitterSettings())
    app.knowledge.set_access(mine, owner="alice", sharing="read")

    def work(ctx):
        while True:
            ctx.check_cancelled()
            time.sleep(0.02)

    job = app.jobs.submit("ingest", f"kb:{mine.id}", mine.name, work)
    with pytest.raises(NotPermitted):
        app.as_user(OTHER).cancel_job(job.id)  # may read it, not stop it
    assert app.jobs.get(job.id).active
    app.as_user(OWNER).cancel_job(job.id)
    assert app.jobs.wait(job.id).status == "cancelled"
