"""A knowledge base built from a real git repository, then kept in step with it."""

import pytest

from core.knowledge.sources import GitInput
from core.knowledge.splitting import SplitterSettings
from tests.git_server import GitServer, Upstream


@pytest.fixture
def upstream(tmp_path):
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served") as server:
        yield Upstream(tmp_path, server)


def _run(services, job):
    done = services.jobs.wait(job.id, timeout=300)
    assert done.status == "done", done.error
    return done.result


def test_git_source_ingests_then_follows_added_changed_and_deleted_files(real_services, upstream):
    first = upstream.commit(
        {
            "README.md": "# Project\n\nLMDeploy 支持 AWQ 4bit 权重量化。\n",
            "docs/serve.md": "# Serving\n\nStart the api_server with one command.\n",
            "docs/old.md": "# Old\n\nAn old page that will be deleted.\n",
            "logo.png": "not really a png",
            ".gitignore": "drafts/\n",
            "drafts/wip.md": "# Draft\n",
        }
    )
    bases = real_services.knowledge
    kb = bases.create("git docs", "multilingual-e5-small-q4", SplitterSettings())
    result = _run(real_services, real_services.start_ingest(kb, GitInput(upstream.url, "main")))
    assert result["files_ingested"] == 3 and result["commit"] == first
    assert {s["path"]: s["reason"] for s in result["skipped"]} == {
        ".git/": "ignored_folder",
        ".gitignore": "unsupported_type",
        "logo.png": "binary",
    }
    (source,) = bases.sources(kb)
    assert source.kind == "git" and source.commit_sha == first and source.ref == "main"
    stats = bases.stats(kb)
    assert stats.chunks == stats.vectors == 3

    second = upstream.commit(
        {
            "docs/serve.md": "# Serving\n\nStart the api_server with one command, then send requests.\n",
            "docs/old.md": None,
            "docs/new.md": "# New\n\nA page added later about KV cache int8.\n",
        }
    )
    result = _run(real_services, real_services.start_refresh(kb, bases.sources(kb)[0]))
    assert (result["files_ingested"], result["files_unchanged"], result["files_removed"]) == (2, 1, 1)
    assert (result["chunks_added"], result["chunks_removed"]) == (2, 2)
    assert bases.sources(kb)[0].commit_sha == second
    assert set(bases.chunk_table(kb)["path"]) == {"README.md", "docs/serve.md", "docs/new.md"}
    stats = bases.stats(kb)
    assert stats.chunks == stats.vectors == 3

    again = _run(real_services, real_services.start_refresh(kb, bases.sources(kb)[0]))
    assert again["chunks_added"] == 0 and again["files_unchanged"] == 3


def test_refused_git_addresses_never_become_sources(real_services):
    kb = real_services.knowledge.create("refused", "multilingual-e5-small-q4", SplitterSettings())
    for url in ["ext::sh -c touch% /tmp/pwned", "file:///etc", "-uhelp", "git://example.com/x.git"]:
        job = real_services.jobs.wait(real_services.start_ingest(kb, GitInput(url)).id, timeout=30)
        assert job.status == "failed"
        assert "cannot be used as a git repository address" in job.error_message("en")
    assert real_services.knowledge.sources(kb) == []
