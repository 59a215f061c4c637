"""The whole app in a real browser: Debian's Chromium driven by Playwright against
``streamlit run Home.py`` on loopback, with the real bundled models. Screenshots of each page
are kept in test-artifacts/ for people to look at."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests import convert_once

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
MISSING = "needs Debian's chromium (setup.sh test installs it)"


def in_ci() -> bool:
    """Whether this runs in CI: the environment variable CI is set to true (or 1), as CI services do."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def find_chromium() -> str | None:
    """Debian's chromium on the PATH; None where it is missing, except in CI, where a missing
    browser is an error: CI must not pass by skipping the one test that drives the app end to end.
    """
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and in_ci():
        pytest.fail(f"CI=true but no chromium on the PATH: the browser test {MISSING}", pytrace=False)
    return found


@pytest.fixture
def chromium() -> str:
    """The chromium to drive; skips where it is missing outside CI and fails in CI."""
    found = find_chromium()
    if found is None:
        pytest.skip(MISSING)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_app(tmp_path):
    """The app served on 127.0.0.1 with a fresh data folder; its URL."""
    yield from _serve(tmp_path)


def _serve(tmp_path, extra_env=None, extra_args=()):
    port = _free_port()
    convert_once.seed(tmp_path / "data")
    env = {**os.environ, "KBA_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra_env or {})
    streamlit = Path(sys.executable).with_name("streamlit")
    log = (tmp_path / "streamlit.log").open("w")
    process = subprocess.Popen(
        [str(streamlit), "run", "Home.py", "--server.port", str(port), "--server.headless", "true", *extra_args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail("the app did not start within 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def shared_app(tmp_path):
    """The app with logins on (KBA_AUTH=users) and two users, alice and bob, in its own secrets file."""
    from core.users import hash_password, secrets_entry

    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        secrets_entry("alice", hash_password("alice-pw")) + "\n" + secrets_entry("bob", hash_password("bob-pw")),
        encoding="utf-8",
    )
    yield from _serve(tmp_path, {"KBA_AUTH": "users"}, ("--secrets.files", str(secrets)))


@pytest.fixture
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
            ],
        )
        yield launched
        launched.close()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def page(browser):
    """A page of the browser; its last state is kept as last.png (where a failing test stopped)."""
    opened = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
    yield opened
    if not opened.is_closed():
        _shot(opened, "last")


def test_a_missing_chromium_is_skipped_but_fails_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no chromium in it
    monkeypatch.delenv("CI", raising=False)
    assert find_chromium() is None
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no chromium"):
        find_chromium()


def test_chromium_is_found_on_the_path(tmp_path, monkeypatch):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert find_chromium() == str(fake)


# chromium first: where it is missing, the test skips (or fails in CI) before the app starts.
def test_load_ingest_ask_and_read_the_sources_in_a_browser(chromium, running_app, page, tmp_path):
    from playwright.sync_api import expect

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "serving.md").write_text(
        "# Serving\n\nTo serve a model, run the api_server command. The server listens on port 23333.\n"
    )
    (docs / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes <script>alert('x')</script>.\n")
    (docs / "量化.md").write_text(
        "# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化（W4A16），也支持 KV cache int8 量化。\n", encoding="utf-8"
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.set_default_timeout(30_000)

    page.goto(running_app)
    page.get_by_role("heading", name="Local Knowledge Assistant").wait_for()
    page.get_by_text("is a demo model for trying the app").wait_for()
    _shot(page, "1-start")

    page.get_by_role("link", name="Models").click()
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text("In memory: SmolLM2-135M-Instruct").wait_for(timeout=240_000)
    _shot(page, "2-models")

    page.get_by_role("link", name="Knowledge").click()
    page.get_by_label("Name (any language)").fill("browser docs")
    page.get_by_role("button", name="Create").click()
    page.get_by_label("Folder path on this machine").fill(str(docs))
    page.get_by_label("Folder path on this machine").press("Enter")
    page.get_by_role("button", name="Ingest").click()
    page.get_by_text("3 file(s) ingested").wait_for(timeout=180_000)
    _shot(page, "3-knowledge")

    page.get_by_role("link", name="Chat").click()
    # Chat starts with the knowledge base preselected (the only one here).
    page.locator("[data-testid=stMultiSelect]").first.get_by_text("browser docs").wait_for()
    page.get_by_placeholder("Ask a question about your documents").fill("Which port does the api_server listen on?")
    page.keyboard.press("Enter")
    page.get_by_text("Sources (").wait_for(timeout=240_000)
    answer = page.locator("[data-testid=stChatMessage]").nth(1)
    # The demo model is loaded, so the answer is quoted from the sources, not written by it.
    assert "Quick answer: sentences quoted from your sources" in answer.inner_text()
    assert "The server listens on port 23333." in answer.inner_text()
    # The conversation is titled with its first question at once, not after a page change.
    expect(page.get_by_role("combobox", name="Conversation")).to_have_value("Which port does the api_server listen on…")
    page.get_by_text("Sources (").click()
    page.get_by_text("browser docs / serving.md:1-3").wait_for()
    page.wait_for_timeout(1000)  # the expander's opening animation, so the picture shows it settled
    _shot(page, "4-chat")
    assert dialogs == []  # document text never runs as a script

    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name="中文").click()
    page.get_by_role("heading", name="对话", exact=True).wait_for()
    page.get_by_placeholder("就文档提出问题").wait_for()  # the page has finished redrawing
    page.get_by_text("出处（").first.wait_for()
    page.get_by_placeholder("就文档提出问题").fill("lmdeploy 支持哪些量化方式？")
    page.keyboard.press("Enter")
    quick = page.locator("[data-testid=stChatMessage]").nth(3)
    quick.get_by_text("快速回答：直接引用资料中的原句").wait_for(timeout=240_000)
    assert "AWQ 4bit 权重量化" in quick.inner_text() and "[1]" in quick.inner_text()
    quick.get_by_text("出处（").click()
    quick.get_by_text("已引用原句").first.wait_for()
    page.wait_for_timeout(1000)
    _shot(page, "5-chat-zh")
    page.get_by_role("link", name="知识库").click()  # the choice outlives a page change
    page.get_by_role("heading", name="知识库", exact=True).wait_for()


def _log_in(page, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_two_users_each_see_only_their_own_knowledge_bases(chromium, shared_app, browser):
    alice = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
    bob = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US").new_page()
    for page in (alice, bob):
        page.set_default_timeout(30_000)
    try:
        _log_in(alice, shared_app, "alice", "wrong")
        alice.get_by_text("Wrong user name or password.").wait_for()
        assert alice.get_by_role("link", name="Knowledge").count() == 0  # no menu before logging in

        alice.get_by_label("Password", exact=True).fill("alice-pw")
        alice.get_by_role("button", name="Log in").click()
        alice.get_by_text("Logged in as alice").wait_for()
        alice.get_by_role("link", name="Knowledge").click()
        alice.get_by_label("Name (any language)").fill("alice private")
        alice.get_by_role("button", name="Create").click()
        alice.get_by_text("Private (only me)").first.wait_for()
        _shot(alice, "users-1-alice")

        # bob's browser goes straight to the Knowledge page: first the login, then that page without alice's base
        bob.goto(f"{shared_app}/knowledge")
        bob.get_by_label("User name").wait_for()
        assert bob.get_by_text("Knowledge bases").count() == 0
        bob.get_by_label("User name").fill("bob")
        bob.get_by_label("Password", exact=True).fill("bob-pw")
        bob.get_by_role("button", name="Log in").click()
        bob.get_by_text("Logged in as bob").wait_for()
        bob.get_by_text("No knowledge base yet").wait_for()
        assert bob.get_by_text("alice private").count() == 0
        _shot(bob, "users-2-bob")

        bob.get_by_role("button", name="Log out").click()
        bob.get_by_label("User name").wait_for()
    finally:
        _shot(alice, "users-last-alice")
        _shot(bob, "users-last-bob")
