"""Chat page: grounded answers (written and cited, or quoted from the sources), with sources users can check."""

import dataclasses

import streamlit as st

from core import chat
from core.errors import AppError, NoModelLoaded
from core.rag.answer import prepare_answer
from ui import generation, keys
from ui.auth import acting
from ui.chat_view import (
    conversations_sidebar,
    current_conversation,
    render_message,
    settings_panel,
    turn_in_flight,
    wait_for_stopped_turn,
)
from ui.common import ensure_entry, plain, show_error, t

ensure_entry()
app = acting()
st.title(t("chat.title"))
wait_for_stopped_turn()
conversation = current_conversation(app)

try:
    llm = app.models.chat_model()
except NoModelLoaded:
    llm = None
resident = app.models.current
spec = resident.spec if resident else None
defaults = generation.settings() or (
    {"temperature": spec.defaults.temperature, "max_new_tokens": spec.defaults.max_new_tokens} if spec else {}
)
with st.sidebar:
    choices = settings_panel(app, defaults, spec, quick_first=llm is None or bool(spec and spec.demo))
    conversations_sidebar(app, conversation)

if llm is None:
    st.info(t("chat.no_model"))
    st.page_link("pages/models.py", label=t("nav.models"), icon=":material/memory:")
elif spec and spec.demo:
    st.info(plain(t("chat.demo.notice", name=spec.name)), icon=":material/science:")
    st.page_link("pages/models.py", label=t("nav.models"), icon=":material/memory:")
else:
    st.caption(t("chat.model", name=spec.name if spec else ""))

again = None  # (index, without the knowledge bases?) of an answer to give again
last = len(conversation.messages) - 1
for index, message in enumerate(conversation.messages):
    with st.chat_message(message.role):
        render_message(app, conversation, index, message)
        if index != last or message.role != "assistant" or llm is None:
            continue
        offer_kb = message.kind == "no_match" and st.button(
            t("chat.answer_anyway"), key=f"{keys.CHAT_ANSWER_ANYWAY}.{conversation.id}.{index}"
        )
        label = t("chat.generate.demo" if spec and spec.demo else "chat.generate", name=spec.name if spec else "")
        offer_write = message.kind in {"quick", "sources"} and st.button(
            label, key=f"{keys.CHAT_GENERATE}{conversation.id}.{index}", icon=":material/edit_note:"
        )
        if offer_kb or offer_write:
            again = (index, bool(offer_kb))

# Quick answers and sources need only the knowledge bases, not a model.
answerable = llm is not None or bool(choices.kbs and choices.answer.mode != "generate")
typed = st.chat_input(t("chat.input"), key=keys.CHAT_INPUT, disabled=not answerable)
if (typed or again) and answerable:
    with turn_in_flight():
        if typed:
            turn = chat.ask(app.conversations, conversation, typed)
            with st.chat_message("user"):
                st.markdown(typed)
        else:
            turn = chat.answer_again(app.conversations, conversation, again[0])
        without_kb = bool(again and again[1])
        settings = choices.answer if typed else dataclasses.replace(choices.answer, mode="generate")
        with st.chat_message("assistant"):
            # Stop interrupts this run wherever it is (rewriting, searching or streaming); the
            # question and whatever was written are saved already.
            st.button(t("chat.stop"), key=keys.CHAT_STOP, icon=":material/stop:")
            rewriting = st.empty()
            try:
                kbs = [] if without_kb else [app.knowledge.get(name) for name in choices.kbs]
                searcher = app.searcher(choices.reranker) if kbs else None
                with st.spinner(t("chat.searching")):
                    answer = prepare_answer(
                        turn.question,
                        turn.history,
                        llm,
                        searcher,
                        kbs,
                        choices.search,
                        settings,
                        on_rewrite=lambda text: rewriting.caption(plain(f"{t('chat.rewriting')} {text}")),
                    )
            except AppError as error:
                chat.abandon(app.conversations, turn)
                show_error(error)
            else:
                chat.settle(app.conversations, turn, answer, spec.name if spec else None, bool(spec and spec.demo))
                if answer.needs_model:
                    # One model serves every open page, one answer at a time: say who is first.
                    if ahead := app.models.in_flight():
                        st.caption(t("chat.queue", count=ahead))
                    pieces = answer.stream(llm, **choices.generation)
                    reply = chat.stream_reply(app.conversations, turn, answer, pieces)
                    try:
                        st.write_stream(reply)
                    finally:
                        # Stop interrupts the stream where it is; closing it saves what was
                        # written (left to the garbage collector, that could come much later).
                        reply.close()
                st.rerun()
