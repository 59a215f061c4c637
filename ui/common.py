"""What every page needs: the shared services, the UI language and error display."""

from __future__ import annotations

import streamlit as st

from core.errors import AppError
from core.services import Services, build_services
from ui import keys
from ui.text import language_for, lookup


@st.cache_resource(show_spinner=False)
def services() -> Services:
    """The process-wide services: one model manager, job manager and store for all sessions."""
    return build_services()


def lang() -> str:
    """The language the user chose, or the browser's when they have not chosen."""
    state = st.session_state
    return state.get(keys.LANG_CHOICE) or state.get(keys.LANG) or language_for(st.context.locale)


def remember_language() -> None:
    """Keep the language switch's value where a page change cannot drop it."""
    st.session_state[keys.LANG_CHOICE] = st.session_state[keys.LANG]


def t(key: str, **params: object) -> str:
    """UI text ``key`` in the current language."""
    return lookup(key, lang(), **params)


def show_error(error: AppError) -> None:
    """Show a core error in the user's language."""
    st.error(error.message(lang()), icon="⚠️")


def duration(seconds: float | None) -> str:
    """A short, human duration."""
    if seconds is None:
        return t("time.unknown")
    return t("time.s", n=seconds) if seconds < 90 else t("time.min", n=seconds / 60)


def plain(text: str) -> str:
    """``text`` with Markdown syntax escaped, for showing file names and document text literally."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in text)


_MARKDOWN_SPECIALS = frozenset("\\`*_{}[]()#+-.!|<>~$:")


ENTRY_RAN = "entry.ran"


def ensure_entry() -> None:
    """Send a page that runs outside ``Home.py``'s navigation through it.

    With a ``pages/`` folder, Streamlit routes a deep link that arrives before the entry file
    has ever run in this server straight to the page file (its older multipage mode), with no
    language switch and the wrong menu. ``Home.py`` marks the session; a page that finds no
    mark goes to ``Home.py``, whose navigation then takes over for good.
    """
    if not st.session_state.get(ENTRY_RAN):
        st.switch_page("Home.py")
