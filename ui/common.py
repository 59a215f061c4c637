"""What every page needs: the shared services, the UI language and error display."""

from __future__ import annotations

import streamlit as st

from core.errors import AppError
from core.services import Services, build_services
from ui import keys
from ui.text import LANGUAGES, language_for, lookup

LANG_PARAM = "lang"  # the address's ?lang=, which a reload or a bookmark keeps


@st.cache_resource(show_spinner=False)
def services() -> Services:
    """The process-wide services: one model manager, job manager and store for all sessions."""
    return build_services()


def lang() -> str:
    """The language the user chose (in this session or in the address), or the browser's."""
    state = st.session_state
    return state.get(keys.LANG_CHOICE) or state.get(keys.LANG) or _address_language() or language_for(st.context.locale)


def _address_language() -> str | None:
    value = st.query_params.get(LANG_PARAM)
    return value if value in LANGUAGES else None


def remember_language() -> None:
    """Keep the language switch's value where a page change cannot drop it, and in the address."""
    st.session_state[keys.LANG_CHOICE] = st.session_state[keys.LANG]
    st.query_params[LANG_PARAM] = st.session_state[keys.LANG]


def keep_language() -> str:
    """The language for this run; a choice is kept in the address (``?lang=``) on every page.

    A reload starts a new session, so only the address carries the choice over; a language
    that arrives in the address counts as chosen. Moving to another page drops the query, so
    it is put back on each run.
    """
    state = st.session_state
    if keys.LANG_CHOICE not in state and (arrived := _address_language()):
        state[keys.LANG_CHOICE] = arrived
    choice = state.get(keys.LANG_CHOICE)
    if choice and st.query_params.get(LANG_PARAM) != choice:
        st.query_params[LANG_PARAM] = choice
    return lang()


def t(key: str, **params: object) -> str:
    """UI text ``key`` in the current language."""
    return lookup(key, lang(), **params)


def show_error(error: AppError) -> None:
    """Show a core error in the user's language."""
    st.error(error.message(lang()), icon="⚠️")


_TOAST_NEXT_RUN = "ui.toast_next_run"


def queue_toast(text: str) -> None:
    """Confirm with a toast shown when the page next draws (from a callback, or before
    ``st.rerun()``: a toast sent just before a rerun is lost with the run that sent it).
    """
    st.session_state[_TOAST_NEXT_RUN] = text


def _show_pending_toast() -> None:
    if text := st.session_state.pop(_TOAST_NEXT_RUN, None):
        st.toast(text, icon=":material/check_circle:")


def duration(seconds: float | None) -> str:
    """A short, human duration."""
    if seconds is None:
        return t("time.unknown")
    return t("time.s", n=seconds) if seconds < 90 else t("time.min", n=seconds / 60)


def clock(seconds: float) -> str:
    """Elapsed time as a ticking clock reads it, the same in every language.

    >>> clock(8.4), clock(128), clock(3725)
    ('0:08', '2:08', '1:02:05')
    """
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plain(text: str) -> str:
    """``text`` with Markdown syntax escaped, for showing file names and document text literally."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in text)


_MARKDOWN_SPECIALS = frozenset("\\`*_{}[]()#+-.!|<>~$:")


ENTRY_RAN = "entry.ran"


def ensure_entry() -> None:
    """Send a page that runs outside ``Home.py``'s navigation through it; then show the toast
    that was queued for it (:func:`queue_toast`).

    With a ``pages/`` folder, Streamlit routes a deep link that arrives before the entry file
    has ever run in this server straight to the page file (its older multipage mode), with no
    language switch and the wrong menu. ``Home.py`` marks the session; a page that finds no
    mark goes to ``Home.py``, whose navigation then takes over for good.
    """
    if not st.session_state.get(ENTRY_RAN):
        st.switch_page("Home.py", query_params=st.query_params.to_dict())
    _show_pending_toast()
