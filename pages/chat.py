"""Chat page: grounded answers streamed token by token, with sources users can check."""

import streamlit as st

from core.conversations import Message
from core.errors import AppError, NoModelLoaded
from core.rag.answer import Turn, prepare_answer
from ui import generation, keys
from ui.chat_view import (
    apply_pending_switch,
    conversations_sidebar,
    current_conversation,
    render_message,
    settings_panel,
    source_records,
    streamed,
)
from ui.common import ensure_entry, services, show_error, t

ensure_entry()
app = services()
st.title(t("chat.title"))
apply_pending_switch()
conversation = current_conversation(app)

try:
    llm = app.models.chat_model()
except NoModelLoaded:
    llm = None
resident = app.models.current
defaults = generation.settings() or (
    {"temperature": resident.spec.defaults.temperature, "max_new_tokens": resident.spec.defaults.max_new_tokens}
    if resident
    else {}
)
with st.sidebar:
    choices = settings_panel(app, defaults)
    conversations_sidebar(app, conversation)

if llm is None:
    st.info(t("chat.no_model"))
    st.page_link("pages/models.py", label=t("nav.models"), icon=":material/memory:")
elif resident:
    st.caption(t("chat.model", name=resident.spec.name))

for index, message in enumerate(conversation.messages):
    with st.chat_message(message.role):
        render_message(app, conversation, index, message)
        unanswered = message.role == "assistant" and message.grounded and not message.sources
        offer = unanswered and index == len(conversation.messages) - 1
        if offer and st.button(t("chat.answer_anyway"), key=f"{keys.CHAT_ANSWER_ANYWAY}.{conversation.id}.{index}"):
            st.session_state["chat.pending"] = conversation.messages[index - 1].content
            st.rerun()

typed = st.chat_input(t("chat.input"), key=keys.CHAT_INPUT, disabled=llm is None)
pending = st.session_state.pop("chat.pending", None)
question = typed or pending
if question and llm is not None:
    history = [Turn(m.role, m.content) for m in conversation.messages if m.content]
    if typed:
        conversation.messages.append(Message("user", question))
        with st.chat_message("user"):
            st.markdown(question)
    with st.chat_message("assistant"):
        try:
            kbs = [] if pending else [app.knowledge.get(name) for name in choices.kbs]
            searcher = app.searcher(choices.reranker) if kbs else None
            with st.spinner(t("chat.searching")):
                answer = prepare_answer(
                    question, history[:-1] if pending else history, llm, searcher, kbs, choices.search, choices.answer
                )
        except AppError as error:
            show_error(error)
            app.conversations.save(conversation)
        else:
            message = Message(
                "assistant",
                "",
                source_records(answer),
                answer.standalone if answer.rewritten else None,
                answer.grounded,
            )
            conversation.messages.append(message)
            if answer.no_match:
                message.content = t("chat.no_match")
                app.conversations.save(conversation)
            elif choices.sources_only:
                message.content = t("chat.sources_only.done")
                app.conversations.save(conversation)
            else:
                st.button(t("chat.stop"), key=keys.CHAT_STOP, icon=":material/stop:")
                st.write_stream(streamed(app, conversation, message, answer.stream(llm, **choices.generation)))
            st.rerun()
