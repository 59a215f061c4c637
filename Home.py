"""Entry point: page setup, the language switch and navigation. Run: streamlit run Home.py"""

import streamlit as st

from ui import keys
from ui.auth import gate
from ui.common import ENTRY_RAN, keep_language, remember_language, t
from ui.text import LANGUAGES

st.set_page_config(
    page_title="本地知识库助手 · Local Knowledge Assistant", page_icon=":material/library_books:", layout="wide"
)

st.session_state[ENTRY_RAN] = True
# Streamlit forgets a widget's state when the page changes, so the choice is also kept under a
# plain key that outlives page switches (and in the address, for reloads) and put back into
# the switch on every run.
st.session_state[keys.LANG] = keep_language()
# The menu is drawn here rather than by Streamlit (client.showSidebarNavigation is off): with a
# pages/ folder, Streamlit's own menu first lists the raw file names until this file has run.
menu = st.sidebar.container()
with st.sidebar:
    st.selectbox(
        t("lang.label"),
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key=keys.LANG,
        on_change=remember_language,
        placeholder=t("select.one"),
    )

pages = [
    st.Page("pages/start.py", title=t("nav.start"), icon=":material/home:", default=True),
    st.Page("pages/models.py", title=t("nav.models"), icon=":material/memory:"),
    st.Page("pages/knowledge.py", title=t("nav.knowledge"), icon=":material/library_books:"),
    st.Page("pages/chat.py", title=t("nav.chat"), icon=":material/chat:"),
    st.Page("pages/evaluate.py", title=t("nav.evaluate"), icon=":material/analytics:"),
]
# With logins on, nothing but the login form shows until someone logs in (no menu, no page).
if gate(pages) is None:
    st.stop()
page = st.navigation(pages, position="hidden")
for entry in pages:
    menu.page_link(entry)
menu.divider()
page.run()
