"""The answer pipeline: one for the Chat page, the Evaluate page and the Python API.

history -> follow-up rewrite (only when the question needs context and the model can) ->
retrieve -> guard (nothing above the relevance floor: no answer, an offer to answer without
the knowledge bases) -> a quick answer quoted from the sources -> the prompt -> the model's
stream -> citations: the model's own, else each sentence matched to the source behind it.

The sources are retrieved first and returned with the answer, so a page can show them
whatever happens to the stream.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from core.errors import InvalidTemplate
from core.knowledge.records import KnowledgeBase
from core.rag.attribution import Attribution, Meaning, attribute, attributed_markdown
from core.rag.context import format_context
from core.rag.extractive import QuickAnswer, quick_answer, quick_answer_markdown
from core.rag.followup import Rewrite, rewrite_followup
from core.rag.prompts import (
    DECLINED_QUOTES_EN,
    DECLINED_QUOTES_ZH,
    NO_CONTEXT_EN,
    NO_CONTEXT_ZH,
    chat_system_prompt,
    declines,
    fill,
    qa_system_prompt,
    qa_template,
)
from core.rag.retrieval import Hit, Searcher, SearchSettings

_CITATION = re.compile(r"\[(\d{1,2})\]")

AnswerMode = Literal["generate", "quick", "sources"]


@dataclasses.dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: Literal["user", "assistant"]
    content: str


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
    """How to answer.

    ``mode``: "generate" (the model writes, citing the sources), "quick" (the sentences of the
    sources that best answer, quoted; no model) or "sources" (the sources alone).
    ``rewrite`` is the user's switch for follow-up rewriting, ``can_rewrite`` the model's
    catalog row's say (off for the demo model).
    """

    lang: str = "zh"
    template: str | None = None
    mode: AnswerMode = "generate"
    rewrite: bool = True
    can_rewrite: bool = True
    history_messages: int = 6
    history_chars: int = 4000


@dataclasses.dataclass
class Answer:
    """Everything decided before the model speaks: the question used, the sources, the quick
    answer and the prompt.
    """

    question: str
    hits: list[Hit]
    messages: list[BaseMessage]
    grounded: bool
    mode: AnswerMode = "generate"
    rewrite: Rewrite | None = None
    quick: QuickAnswer | None = None
    lang: str = "zh"
    meaning: Meaning | None = None  # how sentences are matched by meaning, where the model allows

    @property
    def standalone(self) -> str:
        """The question retrieval used: the rewrite if there was one."""
        return self.rewrite.question if self.rewrite else self.question

    @property
    def rewritten(self) -> bool:
        """Whether the question was rewritten for retrieval."""
        return bool(self.rewrite and self.rewrite.rewritten)

    @property
    def no_match(self) -> bool:
        """Searched, and nothing relevant enough was found: the guard's "nothing fits"."""
        return self.grounded and not self.hits

    @property
    def needs_model(self) -> bool:
        """Whether the answer is the model's to write (not quick, not sources only, not refused)."""
        return not self.grounded or (self.mode == "generate" and bool(self.hits))

    @functools.cached_property
    def docs(self) -> list[Document]:
        """The sources as documents, numbered from 1 in this order (built once)."""
        return [hit.document() for hit in self.hits]

    def quick_markdown(self) -> str:
        """The quick answer with its ``[n]`` citations; empty when no sentence answers."""
        return quick_answer_markdown(self.quick) if self.quick else ""

    def stream(self, llm: BaseChatModel, **generation: Any) -> Iterator[str]:
        """The model's reply, piece by piece."""
        for chunk in llm.stream(self.messages, **generation):
            yield chunk.text

    def cite(self, text: str) -> Attribution:
        """Citations for a finished reply: the model's own that point at a source, the rest of
        its sentences matched to the source that supports them best, or marked unsupported.
        """
        return attribute(text, self.docs if self.grounded else [], meaning=self.meaning)


def check_template(template: str) -> str:
    """The template if it has both ``{context}`` and ``{question}``; else :class:`InvalidTemplate`."""
    missing = [name for name in ("{context}", "{question}") if name not in template]
    if missing:
        raise InvalidTemplate(missing=", ".join(missing))
    return template


def prepare_answer(
    question: str,
    history: Sequence[Turn],
    llm: BaseChatModel | None,
    searcher: Searcher | None = None,
    kbs: Sequence[KnowledgeBase] = (),
    search: SearchSettings | None = None,
    settings: AnswerSettings | None = None,
    *,
    stop: threading.Event | Callable[[], bool] | None = None,
    on_rewrite: Callable[[str], None] | None = None,
) -> Answer:
    """Rewrite (when needed), retrieve, guard and build the prompt; nothing is generated yet.

    Without knowledge bases the model answers on its own. ``stop`` ends a running rewrite
    (the original question is then used); ``on_rewrite`` sees the rewrite as it is written.
    """
    settings = settings or AnswerSettings()
    if searcher is None or not kbs:
        messages = build_messages(chat_system_prompt(settings.lang), history, question, settings)
        return Answer(question, [], messages, grounded=False)
    rewrite = None
    window = _window(history, settings)
    if settings.rewrite and window and llm is not None:
        rewrite = rewrite_followup(
            question, window, llm, settings.lang, capable=settings.can_rewrite, stop=stop, on_text=on_rewrite
        )
    standalone = rewrite.question if rewrite else question
    hits = searcher.search(standalone, kbs, search or SearchSettings())
    answer = Answer(
        question,
        hits,
        [],
        grounded=True,
        mode=settings.mode,
        rewrite=rewrite,
        lang=settings.lang,
        meaning=_meaning(searcher, kbs[0]),
    )
    if hits and settings.mode == "quick":
        answer.quick = quick_answer(standalone, answer.docs)
    context = format_context(answer.docs) or (NO_CONTEXT_ZH if settings.lang == "zh" else NO_CONTEXT_EN)
    template = check_template(settings.template or qa_template(settings.lang))
    last = fill(template, context=context, question=question)
    answer.messages = build_messages(qa_system_prompt(settings.lang), history, last, settings)
    return answer


def _meaning(searcher: Searcher, kb: KnowledgeBase) -> Meaning | None:
    """Matching by meaning with the first knowledge base's model, if its row has a threshold."""
    spec = searcher.bases.embeddings.registry.get(kb.embedding)
    if spec.sentence_match is None:
        return None
    return Meaning(functools.partial(searcher.bases.embeddings.get, kb.embedding), spec.sentence_match)


def build_messages(system: str, history: Sequence[Turn], last: str, settings: AnswerSettings) -> list[BaseMessage]:
    """The prompt's turns: the system text, the recent history, then ``last`` from the user.

    Turns strictly alternate user/assistant and end with the user, whatever the history
    holds (a question that got no answer, two answers in a row): several families' chat
    templates (Gemma-2's among them) refuse anything else.
    """
    return [SystemMessage(system), *_window(history, settings), HumanMessage(last)]


def _window(history: Sequence[Turn], settings: AnswerSettings) -> list[BaseMessage]:
    """The most recent question-and-answer pairs, as many as fit the message and character budget."""
    pairs: list[tuple[Turn, Turn]] = []
    pending: Turn | None = None
    for turn in history:
        if not turn.content.strip():
            continue
        if turn.role == "user":
            pending = turn  # an earlier question left without an answer is dropped
        elif pending is not None:
            pairs.append((pending, turn))
            pending = None
    recent = pairs[-(settings.history_messages // 2) :] if settings.history_messages >= 2 else []
    kept: list[BaseMessage] = []
    used = 0
    for question, reply in reversed(recent):
        used += len(question.content) + len(reply.content)
        if used > settings.history_chars:
            break
        kept[:0] = [HumanMessage(question.content), AIMessage(reply.content)]
    return kept


@dataclasses.dataclass(frozen=True)
class Finished:
    """A finished reply as a reader sees it: ``shown`` with the matched citations ``*[n]*`` and
    doubts ``*[?]*`` added; its ``attribution``; and ``quotes``, the quick answer shown under a
    reply that declined although sources passed the floor (None otherwise).
    """

    shown: str
    attribution: Attribution
    quotes: QuickAnswer | None = None

    def source_kinds(self) -> dict[int, str]:
        """How each source number is used: "cited" by the model, "matched" to a sentence, or
        "quoted" under a declining reply (the strongest kind when several apply).
        """
        kinds: dict[int, str] = {}
        for sentence in self.attribution.sentences:
            for number in sentence.sources:
                if sentence.kind == "cited" or kinds.get(number) != "cited":
                    kinds[number] = sentence.kind
        for number in self.quotes.sources if self.quotes else ():
            kinds.setdefault(number, "quoted")
        return kinds


def finished_text(answer: Answer, text: str) -> Finished:
    """A finished reply as shown: matched citations added as ``*[n]*``, unsupported sentences
    flagged ``*[?]*``, citations that point nowhere dropped.

    A reply that says the sources lack the answer, although some passed the relevance floor,
    is followed by the quick answer, labelled as quotes: small models decline answers their
    top source holds, and the reader then still sees the passages' best sentences, quoted.
    """
    attribution = answer.cite(text)
    if not answer.grounded:
        return Finished(text, attribution)
    shown = attributed_markdown(attribution)
    if not (answer.hits and declines(text)):
        return Finished(shown, attribution)
    quotes = answer.quick or quick_answer(answer.standalone, answer.docs)
    if not quotes.quotes:
        return Finished(shown, attribution)
    label = DECLINED_QUOTES_ZH if answer.lang == "zh" else DECLINED_QUOTES_EN
    return Finished(f"{shown}\n\n{label}\n\n{quick_answer_markdown(quotes)}", attribution, quotes)


@dataclasses.dataclass(frozen=True)
class Reply:
    """A finished answer: ``text`` as said (the model's words, or the quotes of a quick
    answer; empty when nothing fit), ``shown`` with the citations a reader sees, the sources,
    numbered from 1 as the ``[n]`` refer to them, and how each source number is used.
    """

    text: str
    shown: str
    sources: list[Document]
    refused: bool
    attribution: Attribution | None
    source_kinds: dict[int, str] = dataclasses.field(default_factory=dict)


def complete(answer: Answer, llm: BaseChatModel | None = None, **generation: Any) -> Reply:
    """Finish ``answer`` the way the Chat page does: no answer when nothing fits, the quotes of
    a quick answer, or the model's reply with its citations checked and matched.
    """
    if answer.no_match or not answer.needs_model:
        text = answer.quick_markdown()
        quoted = dict.fromkeys(answer.quick.sources if answer.quick else (), "quoted")
        return Reply(text, text, answer.docs, answer.no_match, None, quoted)
    if llm is None:
        raise ValueError("a written answer needs a chat model")
    text = "".join(answer.stream(llm, **generation))
    finished = finished_text(answer, text)
    return Reply(text, finished.shown, answer.docs, False, finished.attribution, finished.source_kinds())


def cited_numbers(text: str, count: int) -> list[int]:
    """Source numbers an answer cites as [n], in order of first mention, within 1..count.

    >>> cited_numbers("AWQ [2] and int8 [1][2]; not [9].", 3)
    [2, 1]
    """
    seen = dict.fromkeys(int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= count)
    return list(seen)


def link_citations(text: str, anchors: dict[int, str]) -> str:
    r"""Markdown where each ``[n]`` that has an anchor links to it.

    >>> print(link_citations("See [1].", {1: "#src-1"}))
    See [\[1\]](#src-1).
    """
    return _CITATION.sub(
        lambda m: f"[\\[{m.group(1)}\\]]({anchors[int(m.group(1))]})" if int(m.group(1)) in anchors else m.group(0),
        text,
    )
