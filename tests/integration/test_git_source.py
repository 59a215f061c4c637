"""Git sources against real repositories served over HTTP on 127.0.0.1 by tests/git_server.py."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from core.errors import GitFailed, GitTimeout, InvalidGitRef, InvalidGitUrl
from core.knowledge import git_source
from core.knowledge.git_source import Change, check_git_url, clone, update
from tests.git_server import GitServer, Upstream, git


@pytest.fixture
def server(tmp_path):
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served") as running:
        yield running


@pytest.fixture
def upstream(tmp_path, server):
    return Upstream(tmp_path, server)


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def test_clone_gets_the_default_branch_a_branch_or_a_tag(tmp_path, upstream, files):
    first = upstream.commit({"README.md": "# v1\n", "docs/guide.md": "指南\n"})
    git(upstream.work, "tag", "-a", "v1.0", "-m", "release")
    git(upstream.work, "push", "-q", "origin", "v1.0")
    main = upstream.commit({"README.md": "# v2\n"})
    git(upstream.work, "checkout", "-q", "-b", "dev")
    dev = upstream.commit({"dev.md": "work in progress\n"}, branch="dev")

    assert clone(upstream.url, tmp_path / "default", files=files) == main
    assert _files(tmp_path / "default") == {"README.md": "# v2\n", "docs/guide.md": "指南\n"}
    assert git(tmp_path / "default", "rev-parse", "HEAD") == main

    assert clone(upstream.url, tmp_path / "dev", ref="dev", files=files) == dev
    assert set(_files(tmp_path / "dev")) == {"README.md", "dev.md", "docs/guide.md"}

    assert clone(upstream.url, tmp_path / "tag", ref="v1.0", files=files) == first
    assert _files(tmp_path / "tag")["README.md"] == "# v1\n"


def test_update_reports_added_modified_deleted_and_renamed_files(tmp_path, upstream, files):
    old = upstream.commit({"a.md": "a\n", "b.md": "b\n", "keep.md": "same\n", "docs/old.md": "moved text\n"})
    repo = tmp_path / "clone"
    clone(upstream.url, repo, files=files)
    # Moving docs/old.md is a rename to git, reported as a deletion and an addition.
    new = upstream.commit(
        {"new.md": "new\n", "a.md": "a, edited\n", "b.md": None, "docs/old.md": None, "docs/moved.md": "moved text\n"}
    )
    (repo / "stray.txt").write_text("left by someone")
    (repo / "keep.md").write_text("edited locally")

    assert update(repo) == (
        old,
        new,
        [
            Change("a.md", "modified"),
            Change("b.md", "deleted"),
            Change("docs/moved.md", "added"),
            Change("docs/old.md", "deleted"),
            Change("new.md", "added"),
        ],
    )
    assert _files(repo) == {
        "a.md": "a, edited\n",
        "docs/moved.md": "moved text\n",
        "keep.md": "same\n",
        "new.md": "new\n",
    }
    assert git(repo, "rev-parse", "HEAD") == new
    assert update(repo) == (new, new, [])


def test_update_follows_a_branch_even_when_its_history_is_rewritten(tmp_path, upstream, files):
    upstream.commit({"a.md": "a\n"})
    git(upstream.work, "checkout", "-q", "-b", "dev")
    before = upstream.commit({"b.md": "b\n"}, branch="dev")
    repo = tmp_path / "clone"
    clone(upstream.url, repo, ref="dev", files=files)
    git(upstream.work, "checkout", "-q", "--orphan", "rewritten")
    git(upstream.work, "rm", "-q", "-r", "--cached", ".")
    for path in ("a.md", "b.md"):
        (upstream.work / path).unlink()
    (upstream.work / "c.md").write_text("c\n")
    git(upstream.work, "add", "c.md")
    git(upstream.work, "commit", "-q", "-m", "start over")
    git(upstream.work, "push", "-q", "-f", "origin", "HEAD:refs/heads/dev")
    after = git(upstream.work, "rev-parse", "HEAD")

    assert update(repo, ref="dev") == (
        before,
        after,
        [Change("a.md", "deleted"), Change("b.md", "deleted"), Change("c.md", "added")],
    )


def test_a_missing_branch_fails_with_a_message_that_names_it(tmp_path, upstream, files):
    upstream.commit({"a.md": "a\n"})
    with pytest.raises(GitFailed) as caught:
        clone(upstream.url, tmp_path / "clone", ref="no-such-branch", files=files)
    assert "no-such-branch" in str(caught.value)
    assert "branch or tag name" in str(caught.value)
    assert "分支或标签名" in caught.value.message("zh")
    assert not (tmp_path / "clone").exists()


def test_an_unreachable_server_fails_quickly_without_leaking_credentials(tmp_path, files):
    started = time.monotonic()
    with pytest.raises(GitFailed) as caught:
        clone("http://user:s3cret@127.0.0.1:9/x.git", tmp_path / "clone", timeout_s=30, files=files)
    assert time.monotonic() - started < 10
    assert "127.0.0.1" in str(caught.value)
    assert "s3cret" not in str(caught.value) and "s3cret" not in caught.value.message("zh")
    assert not (tmp_path / "clone").exists()


def test_a_server_that_never_answers_times_out(tmp_path, files):
    # The kernel completes the connection for a listening socket; nothing ever reads or replies.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.git"
        started = time.monotonic()
        with pytest.raises(GitTimeout) as caught:
            clone(url, tmp_path / "clone", timeout_s=0.5, files=files)
    assert time.monotonic() - started < 5
    assert "0.5 seconds" in str(caught.value)
    assert not (tmp_path / "clone").exists()


def test_a_missing_clone_fails_clearly(tmp_path):
    with pytest.raises(GitFailed) as caught:
        update(tmp_path / "nothing-here")
    assert "not a git repository" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "cleaned"),
    [
        ("https://github.com/owner/repo.git", "https://github.com/owner/repo.git"),
        ("  HTTPS://gitee.com/owner/repo  ", "https://gitee.com/owner/repo"),
        ("ssh://git@github.com/owner/repo.git", "ssh://git@github.com/owner/repo.git"),
        ("ssh://git@git.example.com:2222/team/repo.git", "ssh://git@git.example.com:2222/team/repo.git"),
        ("git@github.com:owner/repo.git", "git@github.com:owner/repo.git"),
        ("http://127.0.0.1:8080/repo.git", "http://127.0.0.1:8080/repo.git"),
        ("http://localhost/repo.git", "http://localhost/repo.git"),
        ("http://[::1]:3000/repo.git", "http://[::1]:3000/repo.git"),
    ],
)
def test_https_ssh_and_local_http_addresses_are_accepted(url, cleaned):
    assert check_git_url(url) == cleaned


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "ext::sh",
        "fd::17",
        "file:///etc",
        "-uhelp",
        "--upload-pack=touch /tmp/x",
        "git://host/x",
        "/local/path",
        "./relative",
        "C:\\repos\\x",
        "http://example.com/x.git",
        "http://127.0.0.1.example.com/x.git",
        "",
        "   ",
        "https://github.com/owner/repo\n--upload-pack=x",
        "ssh://-oProxyCommand=touch%20x/repo",
        "git@-oProxyCommand=x:repo",
        "https://github.com",
        "https://host:notaport/x",
    ],
)
def test_dangerous_or_unusable_addresses_are_refused_before_git_runs(url, tmp_path, monkeypatch, files):
    def no_git(*args, **kwargs):
        raise AssertionError("git must not run")

    monkeypatch.setattr(git_source.subprocess, "Popen", no_git)
    with pytest.raises(InvalidGitUrl) as caught:
        check_git_url(url)
    assert "cannot be used as a git repository address" in str(caught.value)
    assert "不能用作 git 仓库地址" in caught.value.message("zh")
    assert "\n" not in str(caught.value)
    with pytest.raises(InvalidGitUrl):
        clone(url, tmp_path / "clone", files=files)
    assert not (tmp_path / "clone").exists()


@pytest.mark.parametrize("ref", ["-b", "--upload-pack=x", "a..b", "main:refs/heads/x", "x y", "topic.lock", "@{-1}"])
def test_bad_refs_are_refused_before_git_runs(ref, tmp_path, monkeypatch, files):
    monkeypatch.setattr(git_source.subprocess, "Popen", None)
    with pytest.raises(InvalidGitRef):
        clone("https://github.com/owner/repo.git", tmp_path / "clone", ref=ref, files=files)
