"""The parts of the Chat page: conversations, answer settings, messages with their sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import streamlit as st

from core.conversations import Conversation, Message, export_markdown
from core.errors import ConversationNotFound
from core.knowledge.terms import terms
from core.rag.answer import Answer, AnswerSettings, cited_numbers, link_citations
from core.rag.context import snippet
from core.rag.prompts import qa_template
from core.rag.retrieval import SearchSettings
from core.services import Services
from ui import keys
from ui.common import lang, plain, t

MODES = ["hybrid", "rrf", "dense", "mmr", "keyword"]


def keep(key: str, default: object) -> None:
    """Seed widget ``key`` with its last value (widgets forget theirs when another page shows)."""
    saved = "kept." + key
    if key in st.session_state:
        st.session_state[saved] = st.session_state[key]
    else:
        st.session_state[key] = st.session_state.get(saved, default)


def current_conversation(app: Services) -> Conversation:
    """The conversation picked in the sidebar, created when there is none."""
    wanted = st.session_state.get(keys.CHAT_CONVERSATION)
    if wanted:
        try:
            return app.conversations.get(wanted)
        except ConversationNotFound:
            pass
    existing = app.conversations.all()
    conversation = existing[0] if existing else app.conversations.create()
    st.session_state[keys.CHAT_CONVERSATION] = conversation.id
    return conversation


def conversations_sidebar(app: Services, conversation: Conversation) -> None:
    """Pick, start, rename, delete and export conversations."""
    st.subheader(t("chat.conversations"))
    listed = {c.id: c for c in app.conversations.all()}
    st.selectbox(
        t("chat.conversation"),
        list(listed),
        key=keys.CHAT_CONVERSATION,
        format_func=lambda cid: listed[cid].title or t("chat.untitled"),
    )
    if st.button(t("chat.new"), key=keys.CHAT_NEW, icon=":material/add:", width="stretch"):
        _switch_to(app.conversations.create().id)
    rename_col, delete_col = st.columns(2)
    with rename_col.popover(t("chat.rename"), icon=":material/edit:", width="stretch"):
        title = st.text_input(t("chat.rename.title"), conversation.title, key=keys.CHAT_RENAME_TITLE)
        if st.button(t("chat.rename.button"), key=keys.CHAT_RENAME):
            app.conversations.rename(conversation.id, title)
            st.rerun()
    with delete_col.popover(t("chat.delete"), icon=":material/delete:", width="stretch"):
        st.write(t("chat.delete.confirm"))
        if st.button(t("chat.delete.yes"), key=keys.CHAT_DELETE_YES, type="primary"):
            app.conversations.delete(conversation.id)
            remaining = app.conversations.all()
            _switch_to(remaining[0].id if remaining else app.conversations.create().id)
    st.download_button(
        t("chat.export"),
        export_markdown(conversation, lang()),
        key=keys.CHAT_EXPORT,
        file_name=f"{conversation.title or conversation.id}.md",
        mime="text/markdown",
        icon=":material/download:",
        width="stretch",
    )


def _switch_to(conversation_id: str) -> None:
    # The selectbox owns its key once drawn; the switch happens on the next run, before it is.
    st.session_state["chat.switch_to"] = conversation_id
    st.rerun()


def apply_pending_switch() -> None:
    """Select the conversation a button asked for on the last run."""
    if target := st.session_state.pop("chat.switch_to", None):
        st.session_state[keys.CHAT_CONVERSATION] = target


@dataclasses.dataclass(frozen=True)
class ChatChoices:
    """What the settings panel chose."""

    kbs: list[str]
    search: SearchSettings
    reranker: str | None
    answer: AnswerSettings
    sources_only: bool
    generation: dict


def settings_panel(app: Services, model_defaults: dict) -> ChatChoices:
    """Knowledge bases, search and answer settings, the prompt template."""
    names = [kb.name for kb in app.knowledge.all()]
    keep(keys.CHAT_KBS, [])
    st.session_state[keys.CHAT_KBS] = [n for n in st.session_state[keys.CHAT_KBS] if n in names]
    chosen = st.multiselect(
        t("chat.kbs"), names, key=keys.CHAT_KBS, help=t("chat.kbs.help"), placeholder=t("chat.kbs.none")
    )
    with st.expander(t("chat.settings")):
        keep(keys.CHAT_MODE, "hybrid")
        mode = st.selectbox(
            t("chat.mode"),
            MODES,
            key=keys.CHAT_MODE,
            format_func=lambda m: t(f"chat.mode.{m}"),
            help=t("chat.mode.help"),
        )
        keep(keys.CHAT_TOP_K, app.settings.top_k)
        top_k = st.slider(t("chat.top_k"), 1, 12, key=keys.CHAT_TOP_K)
        keep(keys.CHAT_THRESHOLD, 0.0)
        threshold = st.slider(
            t("chat.threshold"), 0.0, 1.0, step=0.05, key=keys.CHAT_THRESHOLD, help=t("chat.threshold.help")
        )
        rerankers = {r.key: r.name for r in app.rerankers()}
        keep(keys.CHAT_RERANKER, None)
        if st.session_state[keys.CHAT_RERANKER] not in rerankers:
            st.session_state[keys.CHAT_RERANKER] = None
        reranker = st.selectbox(
            t("chat.reranker"),
            [None, *rerankers],
            key=keys.CHAT_RERANKER,
            format_func=lambda k: t("chat.reranker.none") if k is None else rerankers[k],
            disabled=not rerankers,
            help=None if rerankers else t("chat.reranker.help"),
            placeholder=t("chat.reranker.none"),
        )
        keep(keys.CHAT_REWRITE, True)
        rewrite = st.toggle(t("chat.rewrite"), key=keys.CHAT_REWRITE, help=t("chat.rewrite.help"))
        keep(keys.CHAT_SOURCES_ONLY, False)
        sources_only = st.toggle(t("chat.sources_only"), key=keys.CHAT_SOURCES_ONLY)
        keep(keys.CHAT_TEMPERATURE, float(model_defaults.get("temperature", 0.7)))
        temperature = st.slider(t("chat.temperature"), 0.0, 2.0, step=0.05, key=keys.CHAT_TEMPERATURE)
        keep(keys.CHAT_MAX_TOKENS, int(model_defaults.get("max_new_tokens", 512)))
        max_new_tokens = st.slider(t("chat.max_new_tokens"), 16, 4096, step=16, key=keys.CHAT_MAX_TOKENS)
        keep(keys.CHAT_TEMPLATE, qa_template(lang()))
        if st.button(t("chat.template.reset"), key=keys.CHAT_TEMPLATE_RESET):
            st.session_state[keys.CHAT_TEMPLATE] = qa_template(lang())
        template = st.text_area(t("chat.template"), key=keys.CHAT_TEMPLATE, height=110)
    return ChatChoices(
        kbs=chosen,
        search=SearchSettings(k=top_k, mode=mode, threshold=threshold, rerank=reranker is not None),
        reranker=reranker,
        answer=AnswerSettings(lang=lang(), template=template, rewrite=rewrite),
        sources_only=sources_only,
        generation={**model_defaults, "temperature": temperature, "max_new_tokens": max_new_tokens},
    )


def source_records(answer: Answer) -> list[dict]:
    """The answer's sources as stored with the message."""
    return [
        {
            "rank": hit.rank,
            "kb": hit.kb.name,
            "path": hit.chunk.path,
            "start_line": hit.chunk.start_line,
            "end_line": hit.chunk.end_line,
            "heading": hit.chunk.heading,
            "score": hit.relevance,
            "text": hit.chunk.text,
            "url": hit.url,
            "cited": False,
        }
        for hit in answer.hits
    ]


def streamed(app: Services, conversation: Conversation, message: Message, pieces: Iterator[str]) -> Iterator[str]:
    """Pass the reply through, and save it when it ends or is stopped (with what came so far)."""
    received: list[str] = []
    finished = False
    try:
        for piece in pieces:
            received.append(piece)
            yield piece
        finished = True
    finally:
        message.content = "".join(received) + ("" if finished else f" {t('chat.stopped')}")
        message.stopped = not finished
        cited = set(cited_numbers(message.content, len(message.sources)))
        for source in message.sources:
            source["cited"] = source["rank"] in cited
        app.conversations.save(conversation)


def render_message(app: Services, conversation: Conversation, index: int, message: Message) -> None:
    """One message: the text (citations linked to their sources), what was searched, the
    sources, and thumbs up/down for answers.
    """
    anchors = {s["rank"]: f"#src-{conversation.id}-{index}-{s['rank']}" for s in message.sources}
    st.markdown(link_citations(message.content, anchors) if message.role == "assistant" else message.content)
    if message.role != "assistant":
        return
    if message.question_used:
        st.caption(plain(t("chat.rewritten", question=message.question_used)))
    if message.grounded:
        asked = conversation.messages[index - 1].content if index else ""
        show_sources(message, conversation.id, index, message.question_used or asked)
    feedback_key = f"{keys.CHAT_FEEDBACK}{conversation.id}.{index}"
    if feedback_key not in st.session_state and message.feedback:
        st.session_state[feedback_key] = 1 if message.feedback > 0 else 0
    choice = st.feedback("thumbs", key=feedback_key)
    vote = 0 if choice is None else (1 if choice == 1 else -1)
    if vote != message.feedback:
        app.conversations.set_feedback(conversation.id, index, vote)
        message.feedback = vote


def show_sources(message: Message, conversation_id: str, index: int, question: str | None = None) -> None:
    """Each source: number, relevance, file and lines (linked for git), section, a snippet with
    the question's words marked, and the whole passage on demand; all shown as text.
    """
    if not message.sources:
        st.caption(t("chat.no_sources"))
        return
    words = terms(question or message.question_used or "")
    with st.expander(t("chat.sources", n=len(message.sources)), expanded=False):
        for source in message.sources:
            anchor = f"src-{conversation_id}-{index}-{source['rank']}"
            st.html(f'<span id="{anchor}"></span>')
            where = f"{source['kb']} / {source['path']}:{source['start_line']}-{source['end_line']}"
            label = plain(t("chat.source", rank=source["rank"], label=where))
            if source.get("url"):
                label = f"[{label}]({source['url']})"
            badges = [t("chat.source.relevance", score=source["score"])]
            if source.get("cited"):
                badges.append(f":green-badge[{t('chat.source.cited')}]")
            st.markdown(f"**{label}** · " + " · ".join(badges), help=t("chat.threshold.help"))
            if source.get("heading"):
                st.caption(plain(source["heading"]))
            st.markdown(_highlighted(source["text"], words))
            with st.popover(t("chat.source.whole")):
                st.code(source["text"], language=None, wrap_lines=True)


def _highlighted(text: str, words: list[str]) -> str:
    """A snippet as Markdown: document text escaped, the question's words marked."""
    parts = []
    for piece, marked in snippet(text, words):
        escaped = plain(piece).replace("\n", " ")
        parts.append(f":orange-background[{escaped}]" if marked else escaped)
    return "".join(parts)
