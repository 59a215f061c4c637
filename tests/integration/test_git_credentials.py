"""A private repository behind HTTP basic authentication (tests/git_server.py): a token typed
into its address is used for that clone only, and is never stored or shown anywhere."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest

from core.conversations import Conversation, Message, export_markdown
from core.credentials import Credentials
from core.errors import GitCredentialsNeeded
from core.knowledge import git_source
from core.knowledge.git_source import clone, update
from core.knowledge.records import Source
from core.knowledge.sources import GitInput
from core.knowledge.splitting import SplitterSettings
from core.rag.retrieval import SearchSettings
from core.services import build_services
from core.settings import Settings
from tests.fakes import HashEmbeddings
from tests.git_server import GitServer, Upstream, git

TOKEN = "ghp_S3cretT0ken"
HEADER = base64.b64encode(f"me:{TOKEN}".encode()).decode()  # the token as git's header would carry it
SECRETS = (TOKEN.encode(), HEADER.encode())


@pytest.fixture
def server(tmp_path):
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served", auth=("me", TOKEN)) as running:
        yield running


@pytest.fixture
def upstream(tmp_path, server):
    project = Upstream(tmp_path, server)
    project.commit({"README.md": "# Private\n\nAWQ quantization keeps weights in 4 bits.\n"})
    return project


def _with_token(url: str) -> str:
    return url.replace("http://", f"http://me:{TOKEN}@")


def _holding_secrets(root: Path) -> list[str]:
    """Every file under ``root`` whose bytes hold the token, or the header made of it."""
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and any(secret in p.read_bytes() for secret in SECRETS)
    ]


def _services(settings: Settings):
    embeddings = HashEmbeddings()
    return build_services(settings, embedding_builder=lambda spec, batch, folder: embeddings)


def test_a_token_in_the_address_clones_and_is_kept_nowhere(tmp_path, upstream, server, files, monkeypatch):
    head = git(upstream.work, "rev-parse", "HEAD")
    started = []
    real_popen = subprocess.Popen

    def recording(args, **kwargs):
        started.append((args, kwargs.get("env") or {}))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(git_source.subprocess, "Popen", recording)
    dest = tmp_path / "clone"
    assert clone(_with_token(upstream.url), dest, files=files) == head
    monkeypatch.undo()

    assert (dest / "README.md").is_file()
    assert all(ok for _, ok in server.requests) and server.requests
    # Never on a command line, which ps shows to every user; in the environment of the one git process.
    assert not [args for args, _ in started if any(TOKEN in a or HEADER in a for a in args)]
    headers = [v for _, env in started for k, v in env.items() if k.startswith("GIT_CONFIG_VALUE_")]
    assert headers == [f"Authorization: Basic {HEADER}"]
    assert git(dest, "remote", "-v").split() == ["origin", upstream.url, "(fetch)", "origin", upstream.url, "(push)"]
    assert _holding_secrets(dest) == []


def test_without_the_token_the_error_says_how_to_give_it(tmp_path, upstream, files):
    with pytest.raises(GitCredentialsNeeded) as caught:
        clone(upstream.url, tmp_path / "clone", files=files)
    assert "KBA_GIT_TOKENS" in str(caught.value) and "git credential approve" in str(caught.value)
    assert "KBA_GIT_TOKENS" in caught.value.message("zh") and "凭据" in caught.value.message("zh")
    assert not (tmp_path / "clone").exists()


def test_a_wrong_token_is_refused_without_being_shown(tmp_path, upstream, files):
    with pytest.raises(GitCredentialsNeeded) as caught:
        clone(upstream.url.replace("http://", "http://me:wrong-token@"), tmp_path / "clone", files=files)
    assert "wrong-token" not in str(caught.value) and "wrong-token" not in caught.value.message("zh")
    assert upstream.url in str(caught.value)


def test_a_fetch_needs_the_token_again(tmp_path, upstream, files):
    dest = tmp_path / "clone"
    clone(_with_token(upstream.url), dest, files=files)
    newer = upstream.commit({"new.md": "# New\n"})
    with pytest.raises(GitCredentialsNeeded):
        update(dest)
    assert update(dest, credentials=Credentials("me", TOKEN))[1] == newer


def test_a_token_alone_is_sent_as_the_user_name(tmp_path, files):
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served", auth=(TOKEN, "")) as server:
        project = Upstream(tmp_path, server)
        project.commit({"a.md": "a\n"})
        dest = tmp_path / "clone"
        clone(project.url.replace("http://", f"http://{TOKEN}@"), dest, files=files)
    assert git(dest, "remote", "get-url", "origin") == project.url and _holding_secrets(dest) == []


def test_nothing_the_app_stores_or_shows_holds_the_token(settings, upstream, monkeypatch):
    services = _services(settings)
    kb = services.knowledge.create("private", "multilingual-e5-small-q4", SplitterSettings())
    job = services.jobs.wait(services.start_ingest(kb, GitInput(_with_token(upstream.url), "main")).id, timeout=60)
    assert job.status == "done", job.error
    assert TOKEN not in json.dumps(job.result)

    (source,) = services.knowledge.sources(kb)
    assert source.location == upstream.url
    hits = services.searcher().search("AWQ quantization", [kb], SearchSettings(threshold=0.0))
    shown = json.dumps([hit.document().metadata for hit in hits]) + export_markdown(
        Conversation("c1", "t", 0, 0, [Message("assistant", "AWQ.", [hit.document().metadata for hit in hits])])
    )
    assert hits and upstream.url.removesuffix(".git") in shown and TOKEN not in shown

    # The token was for that clone only: a refresh asks for it, and says how to give it.
    refresh = services.jobs.wait(services.start_refresh(kb, source).id, timeout=60)
    assert refresh.status == "failed" and "KBA_GIT_TOKENS" in refresh.error_message("en")
    assert TOKEN not in json.dumps(refresh.error)

    # Named by the configuration for this server, a variable gives it again.
    monkeypatch.setenv("PRIVATE_GIT_TOKEN", f"me:{TOKEN}")
    configured = Settings(data_dir=settings.data_dir, git_tokens={upstream.url: "PRIVATE_GIT_TOKEN"})
    upstream.commit({"more.md": "# More\n\nKV cache int8.\n"})
    again = _services(configured)
    refreshed = again.jobs.wait(again.start_refresh(kb, again.knowledge.sources(kb)[0]).id, timeout=60)
    assert refreshed.status == "done", refreshed.error
    assert refreshed.result["files_ingested"] == 1

    assert _holding_secrets(settings.data_dir) == []  # records, their log, jobs, the clone, vectors


def test_a_token_configured_for_another_server_is_not_sent(settings, upstream, monkeypatch):
    monkeypatch.setenv("OTHER_GIT_TOKEN", f"me:{TOKEN}")
    services = _services(
        Settings(data_dir=settings.data_dir, git_tokens={"https://git.example.com": "OTHER_GIT_TOKEN"})
    )
    kb = services.knowledge.create("private", "multilingual-e5-small-q4", SplitterSettings())
    job = services.jobs.wait(services.start_ingest(kb, GitInput(upstream.url)).id, timeout=60)
    assert job.status == "failed" and "KBA_GIT_TOKENS" in job.error_message("en")


def test_what_earlier_versions_stored_with_the_token_is_cleaned_on_start(settings, upstream, tmp_path):
    services = _services(settings)
    kb = services.knowledge.create("old", "multilingual-e5-small-q4", SplitterSettings())
    # As earlier versions did: the address recorded as typed, and cloned with it.
    typed = _with_token(upstream.url)
    old = services.knowledge.records.upsert_source(Source("0ld50urce", kb.id, "git", typed, None, None, 1.0, None))
    twin = services.knowledge.records.upsert_source(Source("tw1n", kb.id, "git", upstream.url, None, None, 2.0, None))
    git(tmp_path, "clone", "-q", typed, str(services.knowledge.source_folder(old)))
    jobs = settings.jobs_dir / "0123456789ab.json"
    jobs.write_text(
        json.dumps(
            {
                "id": "0123456789ab",
                "kind": "ingest",
                "target": f"kb:{kb.id}",
                "title": "old",
                "status": "done",
                "result": {"source": typed},
                "pid": 1,
                "started": time.time(),
            }
        )
    )
    conversation = settings.data_dir / "conversations" / "abcdef123456.json"
    conversation.write_text(
        json.dumps(
            {
                "id": "abcdef123456",
                "title": "t",
                "created": 0,
                "updated": 0,
                "messages": [{"role": "assistant", "content": "x", "sources": [{"source": typed, "url": typed}]}],
            }
        )
    )
    assert _holding_secrets(settings.data_dir)

    started = _services(settings)

    assert _holding_secrets(settings.data_dir) == []
    # The same repository recorded twice, with and without the token, is one source now.
    assert [s.id for s in started.knowledge.sources(kb)] == [twin.id]
    assert started.jobs.get("0123456789ab").result == {"source": upstream.url}
    assert started.conversations.get("abcdef123456").messages[0].sources == [
        {"source": upstream.url, "url": upstream.url}
    ]


def test_a_recorded_token_is_taken_out_of_the_records(settings, upstream):
    services = _services(settings)
    kb = services.knowledge.create("old", "multilingual-e5-small-q4", SplitterSettings())
    services.knowledge.records.upsert_source(
        Source("0ld50urce", kb.id, "git", _with_token(upstream.url), "main", None, 1.0, None)
    )
    started = _services(settings)
    assert [s.location for s in started.knowledge.sources(kb)] == [upstream.url]
    assert _holding_secrets(settings.data_dir) == []


def test_a_fetch_can_use_gits_own_credential_helper(tmp_path, upstream, server, files, monkeypatch):
    store = tmp_path / "git-credentials"  # the user's own helper and file, outside the data folder
    store.write_text(_with_token(server.base_url) + "\n")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "credential.helper")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", f"store --file={store}")
    dest = tmp_path / "clone"
    clone(_with_token(upstream.url), dest, files=files)  # the token's header joins the user's configuration
    newer = upstream.commit({"new.md": "# New\n"})
    assert update(dest)[1] == newer
    assert _holding_secrets(dest) == []
