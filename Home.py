"""Entry point: page setup, the language switch and navigation. Run: streamlit run Home.py"""

import streamlit as st

from ui import keys
from ui.common import ENTRY_RAN, lang, t
from ui.text import LANGUAGES

st.set_page_config(
    page_title="本地知识库助手 · Local Knowledge Assistant", page_icon=":material/library_books:", layout="wide"
)

st.session_state[ENTRY_RAN] = True
# Widgets in the entry file keep their state across pages, so the language switch lives here.
st.session_state.setdefault(keys.LANG, lang())
with st.sidebar:
    st.selectbox(t("lang.label"), list(LANGUAGES), format_func=LANGUAGES.get, key=keys.LANG)

pages = [
    st.Page("pages/start.py", title=t("nav.start"), icon=":material/home:", default=True),
    st.Page("pages/models.py", title=t("nav.models"), icon=":material/memory:"),
    st.Page("pages/knowledge.py", title=t("nav.knowledge"), icon=":material/library_books:"),
    st.Page("pages/chat.py", title=t("nav.chat"), icon=":material/chat:"),
    st.Page("pages/evaluate.py", title=t("nav.evaluate"), icon=":material/analytics:"),
]
st.navigation(pages).run()
