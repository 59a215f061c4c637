"""The UI language and the Models page's confirmations in a real browser: Debian's Chromium,
asking for Chinese, against ``streamlit run Home.py``. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.integration.test_browser import (  # noqa: F401 - fixtures: pytest finds them by name here
    ARTIFACTS,
    browser,
    chromium,
    in_ci,
    running_app,
)

# Records whether Streamlit's own page menu (raw file names such as "chat", "evaluate") ever shows.
_WATCH_MENU = """
window.__rawMenuSeen = false;
new MutationObserver(() => {
  if (document.querySelector('[data-testid="stSidebarNav"]')) window.__rawMenuSeen = true;
}).observe(document, {childList: true, subtree: true});
"""


@pytest.fixture
def cjk_font() -> None:
    """A font with Chinese glyphs, so that screenshots show what users read, not empty boxes."""
    fc_list = shutil.which("fc-list")
    found = fc_list and subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True).stdout.strip()
    if not found:
        if in_ci():
            pytest.fail("CI=true but no CJK font: setup.sh test installs fonts-noto-cjk", pytrace=False)
        pytest.skip("needs a CJK font (setup.sh test installs fonts-noto-cjk)")


@pytest.fixture
def zh_page(browser):  # noqa: F811 - the fixture imported above
    """A page whose browser asks for Chinese; its last state is kept as lang-last.png."""
    opened = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    opened.set_default_timeout(30_000)
    opened.add_init_script(_WATCH_MENU)
    yield opened
    if not opened.is_closed():
        _shot(opened, "lang-last")


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _choose_language(page, label: str) -> None:
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name=label).click()


# chromium first: where it is missing, the test skips (or fails in CI) before the app starts.
def test_the_language_choice_survives_reloads_and_page_changes(chromium, cjk_font, running_app, zh_page):  # noqa: F811
    page = zh_page
    page.goto(running_app)
    page.get_by_role("heading", name="本地知识库助手").wait_for()  # the browser asks for Chinese
    page.get_by_role("link", name="模型").wait_for()
    assert page.evaluate("window.__rawMenuSeen") is False  # the menu shows titles from the start
    _shot(page, "lang-1-zh-start")

    _choose_language(page, "English")
    page.get_by_role("heading", name="Local Knowledge Assistant").wait_for()
    assert "lang=en" in page.url
    page.reload()
    page.get_by_role("heading", name="Local Knowledge Assistant").wait_for()
    _shot(page, "lang-2-en-after-reload")

    page.get_by_role("link", name="Models").click()
    page.get_by_role("heading", name="Models", exact=True).wait_for()
    page.reload()  # the address still carries the choice on another page
    page.get_by_role("heading", name="Models", exact=True).wait_for()
    page.get_by_text("Add a model").wait_for()  # the page has drawn past the catalog
    assert page.get_by_role("heading", name="模型", exact=True).count() == 0
    _shot(page, "lang-3-en-models-after-reload")


def test_the_chinese_models_page_is_chinese_and_says_what_loading_is_doing(
    chromium,  # noqa: F811
    cjk_font,
    running_app,  # noqa: F811
    zh_page,
):
    page = zh_page
    page.goto(running_app)
    page.get_by_role("link", name="模型").click()
    page.get_by_role("heading", name="模型", exact=True).wait_for()
    page.get_by_text("随应用内置的小型英文模型：用于试用本应用，不能给出可靠回答。").wait_for()
    # The table draws on a canvas; its column headers are there for screen readers.
    page.get_by_text("内存 bf16 / 8位 / 4位（GB）").first.wait_for(state="attached")
    placeholders = page.locator("[data-testid=stMain] [data-testid=stSelectbox] input").evaluate_all(
        "inputs => inputs.map(i => i.getAttribute('placeholder'))"
    )
    assert placeholders and "Choose an option" not in placeholders
    assert "请选择" in placeholders
    _shot(page, "lang-4-zh-models")

    page.get_by_role("button", name="加载", exact=True).click()
    stage = page.get_by_text("第 1 步，共 2 步：正在将内置模型转换为模型文件夹（仅首次加载）…")
    stage.wait_for(timeout=60_000)
    stage.scroll_into_view_if_needed()
    page.get_by_text(re.compile(r"（本步 0:0[1-9]，共 0:0[1-9]）")).wait_for()  # the clocks tick
    _shot(page, "lang-5-zh-loading-stage")
    assert page.get_by_text("半分钟").count() == 0


def test_adding_and_removing_a_server_confirms_in_a_browser(chromium, running_app, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page.set_default_timeout(30_000)
    try:
        page.goto(running_app)
        page.get_by_role("link", name="Models").click()
        page.get_by_text("Add a model").click()
        form = page.locator("[data-testid=stExpander]").filter(has_text="Add a model")
        form.get_by_label("Display name (optional)").fill("Team server")
        form.get_by_role("tab", name="Model server (OpenAI API)").click()
        form.get_by_label("Base URL, e.g. http://localhost:8000/v1").fill("http://127.0.0.1:9/v1")
        form.get_by_label("Served model name").fill("qwen")
        form.get_by_label("Served model name").press("Enter")
        form.locator("[role=tabpanel]:visible").get_by_role("button", name="Add", exact=True).click()
        page.get_by_text("Added Team server to the catalog.").wait_for()
        _shot(page, "lang-6-server-added")
        assert form.get_by_label("Display name (optional)").input_value() == ""

        page.get_by_role("button", name="Remove from catalog").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Remove Team server from the catalog?").wait_for()
        _shot(page, "lang-7-remove-dialog")
        dialog.get_by_role("button", name="Yes, remove").click()
        page.get_by_text("Removed Team server from the catalog.").wait_for()
    finally:
        _shot(page, "lang-8-after-remove")
        page.close()
