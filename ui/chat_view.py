"""The parts of the Chat page: conversations, answer settings, messages with their sources."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections.abc import Iterator

import streamlit as st
from langchain_core.documents import Document

from core.conversations import Conversation, Message, close_fences, export_markdown, export_name
from core.errors import ConversationNotFound
from core.knowledge.terms import terms
from core.models.spec import ModelSpec
from core.rag.answer import AnswerSettings, link_citations
from core.rag.context import snippet, source_label
from core.rag.extractive import Quote, highlights
from core.rag.prompts import qa_template
from core.rag.retrieval import SearchSettings
from core.services import Services
from ui import keys
from ui.common import lang, plain, services, t
from ui.source_page import page_button

MODES = ["hybrid", "rrf", "dense", "mmr", "keyword"]
_KBS_PICKED = "chat.kbs_picked"  # whether the user chose the knowledge bases (state, not a widget)
ANSWER_MODES = ["generate", "quick", "sources"]
# How long a run waits for this session's stopped answer to be saved (a model stops at its next
# token, well within this on any machine that answers at all).
STOPPED_TURN_WAIT_S = 15.0


@contextlib.contextmanager
def turn_in_flight() -> Iterator[None]:
    """Mark this session's answer as being written until the block ends, however it ends.

    Streamlit starts the next run as soon as a button is pressed (``runner.fastReruns``), in a
    new thread, while the run that was answering is still stopping: that run saves the answer
    in its ``finally``, so without this the next run can draw the conversation before the
    stopped answer's last words (or any of them) are saved.
    """
    done = threading.Event()
    st.session_state[keys.CHAT_TURN] = done
    try:
        yield
    finally:
        done.set()


def wait_for_stopped_turn() -> None:
    """Wait until this session's previous answer, if one was still being written, is saved."""
    done = st.session_state.get(keys.CHAT_TURN)
    if done is not None:
        done.wait(STOPPED_TURN_WAIT_S)


def keep(key: str, default: object) -> None:
    """Seed widget ``key`` with its last value (widgets forget theirs when another page shows).

    The value is written again on every run, before the widget is drawn: a widget whose labels
    change (the language switch) is a new widget to Streamlit, which would otherwise start it
    at its first option instead of the user's choice.
    """
    saved = "kept." + key
    value = st.session_state.get(key, st.session_state.get(saved, default))
    st.session_state[saved] = st.session_state[key] = value


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
    ids = list(listed)
    # The titles are part of the key: a browser keeps showing a widget's old labels otherwise,
    # so a new title (the first question, a rename) would not show until the page changed.
    titles = "\x1f".join(f"{cid}={c.title}" for cid, c in listed.items())
    picked = st.selectbox(
        t("chat.conversation"),
        ids,
        index=ids.index(conversation.id) if conversation.id in ids else None,
        key=keys.CHAT_PICK + hashlib.sha1(titles.encode()).hexdigest()[:12],
        format_func=lambda cid: listed[cid].title or t("chat.untitled"),
        placeholder=t("select.one"),
    )
    if picked and picked != conversation.id:
        _switch_to(picked)
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
        file_name=export_name(conversation),
        mime="text/markdown",
        icon=":material/download:",
        width="stretch",
    )


def _switch_to(conversation_id: str) -> None:
    st.session_state[keys.CHAT_CONVERSATION] = conversation_id
    st.rerun()


@dataclasses.dataclass(frozen=True)
class ChatChoices:
    """What the settings panel chose."""

    kbs: list[str]
    search: SearchSettings
    reranker: str | None
    answer: AnswerSettings
    generation: dict


def settings_panel(app: Services, model_defaults: dict, spec: ModelSpec | None, quick_first: bool) -> ChatChoices:
    """Knowledge bases, search and answer settings, the prompt template.

    With no model or the demo model the answer starts as a quick answer (quoted, no model);
    each keeps its own choice, so loading a real model starts with written answers.
    """
    names = [kb.name for kb in app.knowledge.all()]
    keep(keys.CHAT_KBS, [])
    kept = [n for n in st.session_state[keys.CHAT_KBS] if n in names]
    # Until the user picks, the chat searches a knowledge base (the one answers last came from,
    # else the first) rather than the model alone; an empty choice of the user's own is kept.
    if not kept and names and not st.session_state.get(_KBS_PICKED):
        kept = [app.conversations.last_used_kb(names) or names[0]]
    st.session_state[keys.CHAT_KBS] = st.session_state["kept." + keys.CHAT_KBS] = kept
    chosen = st.multiselect(
        t("chat.kbs"),
        names,
        key=keys.CHAT_KBS,
        help=t("chat.kbs.help"),
        placeholder=t("chat.kbs.none"),
        on_change=lambda: st.session_state.update({_KBS_PICKED: True}),
    )
    mode_key = f"{keys.CHAT_ANSWER_MODE}.{'demo' if quick_first else 'model'}"
    keep(mode_key, "quick" if quick_first else "generate")
    answer_mode = st.radio(
        t("chat.answer_mode"),
        ANSWER_MODES,
        key=mode_key,
        format_func=lambda m: t(f"chat.answer_mode.{m}"),
        help=t("chat.answer_mode.help"),
    )
    with st.expander(t("chat.settings")):
        keep(keys.CHAT_MODE, "hybrid")
        mode = st.selectbox(
            t("chat.mode"),
            MODES,
            key=keys.CHAT_MODE,
            format_func=lambda m: t(f"chat.mode.{m}"),
            help=t("chat.mode.help"),
            placeholder=t("select.one"),
        )
        keep(keys.CHAT_TOP_K, app.settings.top_k)
        top_k = st.slider(t("chat.top_k"), 1, 12, key=keys.CHAT_TOP_K)
        keep(keys.CHAT_THRESHOLD_AUTO, True)
        calibrated = st.toggle(
            t("chat.threshold.auto"), key=keys.CHAT_THRESHOLD_AUTO, help=t("chat.threshold.auto.help")
        )
        keep(keys.CHAT_THRESHOLD, 0.5)
        threshold = st.slider(
            t("chat.threshold"),
            0.0,
            1.0,
            step=0.05,
            key=keys.CHAT_THRESHOLD,
            help=t("chat.threshold.help"),
            disabled=calibrated,
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
        search=SearchSettings(
            k=top_k, mode=mode, threshold=None if calibrated else threshold, rerank=reranker is not None
        ),
        reranker=reranker,
        answer=AnswerSettings(
            lang=lang(),
            template=template,
            mode=answer_mode,
            rewrite=rewrite,
            can_rewrite=bool(spec and spec.can_rewrite),
        ),
        generation={**model_defaults, "temperature": temperature, "max_new_tokens": max_new_tokens},
    )


def render_message(app: Services, conversation: Conversation, index: int, message: Message) -> None:
    """One message: the answer as its kind says (written, quoted, nothing fits, sources only),
    what was searched, the sources, and thumbs up/down for answers.
    """
    if message.role != "assistant":
        st.markdown(message.content)
        return
    anchors = {s["rank"]: f"#src-{conversation.id}-{index}-{s['rank']}" for s in message.sources}
    body = message.shown or message.content
    if message.kind == "no_match":
        st.markdown(t("chat.no_match"))
    elif message.kind == "pending":
        st.caption(t("chat.pending"))
    elif message.kind == "sources":
        st.caption(t("chat.sources_only.done"))
    elif message.kind == "quick":
        st.caption(t("chat.quick.label"))
        st.markdown(link_citations(body, anchors) if body else t("chat.quick.none"))
    else:
        stopped = f"\n\n{t('chat.stopped')}" if message.stopped else ""
        st.markdown(link_citations(close_fences(body), anchors) + stopped)
        if message.demo:
            st.caption(plain(t("chat.demo.label", name=message.model)))
        if message.grounded and message.sources:
            st.caption(t("chat.citations.legend"))
    _rewrite_note(message)
    if message.grounded and message.kind not in {"pending", "no_match"}:
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


def _rewrite_note(message: Message) -> None:
    if message.question_used:
        st.caption(plain(t("chat.rewritten", question=message.question_used)))
    elif message.rewrite and message.rewrite.get("skipped"):
        output = (message.rewrite.get("output") or "")[:80]
        reason = t(f"chat.rewrite.reason.{message.rewrite['skipped']}", output=output)
        st.caption(plain(t("chat.rewrite.skipped", reason=reason)))


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
            where = f"{source['kb']} / {source_label(Document('', metadata=source))}"
            label = plain(t("chat.source", rank=source["rank"], label=where))
            if source.get("url"):
                label = f"[{label}]({source['url']})"
            badges = [t("chat.source.relevance", score=source["score"])]
            if cited := source.get("cited"):
                colour = "blue" if cited == "matched" else "green"
                badges.append(f":{colour}-badge[{t(f'chat.source.{cited}')}]")
            st.markdown(f"**{label}** · " + " · ".join(badges), help=t("chat.threshold.help"))
            if source.get("heading"):
                st.caption(plain(source["heading"]))
            st.markdown(_highlighted(source["text"], words, source.get("quotes")))
            with st.popover(t("chat.source.whole")):
                st.code(source["text"], language=None, wrap_lines=True)
            page_button(services(), source.get("source_id", ""), source["path"], source.get("page"), f"{anchor}.page")


def _highlighted(text: str, words: list[str], quotes: list[list[int]] | None = None) -> str:
    """A snippet as Markdown: document text escaped, the question's words marked; for a quick
    answer, the whole passage with the quoted sentences marked instead.
    """
    if quotes:
        pieces = highlights(text, [Quote("", 1, start, end, 0.0) for start, end in quotes], 1)
    else:
        pieces = snippet(text, words)
    parts = []
    for piece, marked in pieces:
        escaped = plain(piece).replace("\n", " ")
        parts.append(f":orange-background[{escaped}]" if marked else escaped)
    return "".join(parts)
