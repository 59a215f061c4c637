"""Chat page: grounded answers streamed token by token, each with its sources."""

import streamlit as st

from core.errors import AppError, NoModelLoaded
from core.rag.answer import answer
from core.rag.context import source_label
from core.rag.retrieval import KnowledgeRetriever
from ui import keys
from ui.common import lang, plain, services, show_error, t

app = services()
st.title(t("chat.title"))
messages: list[dict] = st.session_state.setdefault(keys.CHAT_MESSAGES, [])

with st.sidebar:
    chosen = st.multiselect(
        t("chat.kbs"), [kb.name for kb in app.knowledge.all()], key=keys.CHAT_KBS, help=t("chat.kbs.help")
    )
    top_k = st.slider(t("chat.top_k"), 1, 12, app.settings.top_k, key=keys.CHAT_TOP_K)
    if st.button(t("chat.clear"), key=keys.CHAT_CLEAR):
        messages.clear()
        st.rerun()

try:
    llm = app.models.chat_model()
except NoModelLoaded:
    llm = None
    st.info(t("chat.no_model"))
    st.page_link("pages/models.py", label=t("nav.models"), icon=":material/memory:")
else:
    if app.models.current:
        st.caption(t("chat.model", name=app.models.current.spec.name))


def show_sources(sources: list[dict]) -> None:
    if not sources:
        st.caption(t("chat.no_sources"))
        return
    with st.expander(t("chat.sources", n=len(sources))):
        for source in sources:
            st.markdown(plain(t("chat.source", rank=source["rank"], label=source["label"], score=source["score"])))
            st.code(source["text"], language=None, wrap_lines=True)


for message in messages:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])
        if message["role"] == "assistant" and message.get("grounded"):
            show_sources(message["sources"])

question = st.chat_input(t("chat.input"), key=keys.CHAT_INPUT, disabled=llm is None)
if question and llm is not None:
    messages.append({"role": "user", "content": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        try:
            retriever = KnowledgeRetriever(bases=app.knowledge, kb_names=chosen, k=top_k) if chosen else None
            with st.spinner(t("chat.searching")):
                result = answer(question, retriever, llm, lang())
            reply = st.write_stream(result.tokens)
            sources = [
                {
                    "rank": d.metadata["rank"],
                    "label": f"{d.metadata['kb']} / {source_label(d)}",
                    "score": d.metadata["score"],
                    "text": d.page_content,
                }
                for d in result.sources
            ]
            if retriever:
                show_sources(sources)
        except AppError as error:
            show_error(error)
        else:
            messages.append(
                {"role": "assistant", "content": reply, "sources": sources, "grounded": retriever is not None}
            )
