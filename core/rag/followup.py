"""Follow-up questions: decide whether one needs the conversation, rewrite it, check the rewrite.

Retrieval sees only the question, so "它什么时候发布的？" finds nothing about "it". Rewriting
costs a model call, so it runs only when the question needs context (a pronoun, a
demonstrative, an ellipsis such as "那英文版呢？", or a question too short to name anything),
only with a model able to do it (the catalog's ``can_rewrite``), within a token and time
budget, and stoppable. Its output is used only if it is one question that keeps the original's
words and does not start like an answer; otherwise the original question is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from core.rag.prompts import condense_prompt, fill

RewriteSkip = Literal["not needed", "model not capable", "rejected output", "timed out", "stopped", "unchanged"]

_CJK = r"\u4e00-\u9fff"

# Words that contain a pronoun character without being one; they are masked before matching.
_ZH_NOT_CUES = re.compile(
    r"其他|其它|其实|其次|尤其|极其|与其(?![他它])|土耳其|马其顿|(?<=[”」》\"])[这那](个|种|些)?|吉他|他人|他国|他乡|他者|他日|应该|活该|因此|如此|彼此|此外"
)
_ZH_CUE = re.compile(
    r"[它他她其]"
    r"|该(?=[" + _CJK + r"])(?![怎如不])"  # 该公司, not 该怎么办 ("should")
    r"|此|上述|刚才|之前说"
    # 这/那 as demonstratives; 那么, 那不勒斯 and the like are not.
    r"|[这那](?=[个些种款位部本项次里儿家样篇条段份首只台座所支句点类张门件场是])"
    r"|^这"
)
_ZH_ELLIPSIS = re.compile(
    r"^(那|那么|还有|而|另外|至于).*呢[？?]?$"
    r"|^(还有|然后|接着|继续|具体|详细|展开|举个?例|比如|真的|是吗|怎么说)"
    r"|^(为什么|为啥)(呢|啊|呀)?[？?]?$"
    r"|^(那|那么)?(怎么|如何|怎样)(办|做|用|弄|安装|使用|配置|部署|运行|解决|实现|下载|更新|升级|设置)[？?]?$"
)
_ZH_ELLIPSIS_MAX = 8  # content characters; "还有哪些模型支持 AWQ 量化？" names its topic
_ZH_QUESTION_WORD = re.compile(r"什么|哪|谁|几|多少|怎|如何|为何|是否|吗")
_ZH_SHORT = 3  # content characters: "为什么？", "在哪？"

_EN_PRONOUN = re.compile(r"\b(it|its|itself|they|them|their|theirs|he|him|his|she|her|hers|this|these|those)\b", re.I)
# "that" as a pronoun; after a noun it starts a clause ("models that support AWQ").
_EN_THAT = re.compile(
    r"(^that\b|\b(about|of|for|with|in|on|from|like|do|does|did|use)\s+that\b|\bthat\s*[?.!]?$)", re.I
)
# "Is it possible to ...", "How long does it take to ...": "it" that points at nothing.
_EN_DUMMY_IT = re.compile(
    r"\b(is|was|does|did|will|would|can|could|should|isn't|doesn't)\s+it\b(?=.*\b(to|that|if|whether|when)\b)"
    r"|\bit(?:'s|\s+is|\s+was)\s+(possible|necessary|safe|true|better|worth|ok|okay|hard|easy|recommended|required)\b",
    re.I,
)
_EN_OWNED = frozenset({"its", "itself", "their", "theirs", "them", "themselves", "him", "his", "her", "hers"})
# "this year", and "those who/with ..." (people in general) point at nothing said before.
_EN_TIME = re.compile(r"\b(this|these)\s+(year|month|week|days|time)\b|\bthose\s+(?=who|with|that|of|in|without)", re.I)
_EN_ELLIPSIS = re.compile(
    r"^(what|how)\s+about\b|^(and|also|or|but|so)\b|^(why|how come|really|which one|what else|anything else|"
    r"go on|continue|tell me more|more details|for example|such as|like what|"
    r"the (former|latter|same|other|first|second))\b",
    re.I,
)
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9.+#_-]*|\d[\w.]*")
# Words that name nothing by themselves: a question made only of these lacks its topic.
_EN_EMPTY_WORDS = """
    a an the of to in on at by for with from about into as and or but not no yes so if than then there here
    what which who whom whose when where why how whether is are was were be been being am do does did done
    can could should would will shall may might must have has had i me my you your we us our one ones
    it its they them their he him his she her this that these those such same other else more less most
    much many some any all each again also just only still really please tell show give explain describe
    mean means work works use used using install run get make take go say happen start stop fix need want
    change set compare differ better best thing things way ways example examples kind kinds type types detail
    details info information lot bit like"""
_EN_EMPTY = frozenset(_EN_EMPTY_WORDS.split())

_INTERROGATIVE_START = {
    "zh": re.compile(r"^(请问|什么|哪|谁|为什么|为何|怎么|怎样|如何|是否|多少|几)"),
    "en": re.compile(
        r"^(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|should|would|"
        r"will|has|have|had)\b",
        re.I,
    ),
}
# Starts that only an answer has; a rewrite that begins so is refused.
_ANSWER_START = {
    "zh": re.compile(r"^(首先|答案|回答|根据|是的|好的|抱歉|很抱歉|对不起|当然|以下|你可以|您可以|你需要|您需要)"),
    "en": re.compile(
        r"^(sure|yes|no|the answer|answer|based on|according to|sorry|here|certainly|of course|i|i'm|"
        r"you (can|could|should|need|must|may))\b",
        re.I,
    ),
}
# Starts that a question may share ("可以用 GPU 吗？", "To which company ...?"): refused without a question mark.
_ANSWER_START_UNLESS_ASKED = {
    "zh": re.compile(r"^(可以|要|需要|不是)"),
    "en": re.compile(r"^(to|first|firstly)\b", re.I),
}
_EXTRA_CHARS = {"zh": 40, "en": 120}  # room for the phrase that replaces a pronoun
_KEPT_SHARE = 0.5  # of the original's content, so an unrelated question is refused
_LABELS = ("独立问题：", "独立问题:", "改写后的问题：", "改写后的问题:", "问题：", "Standalone question:", "Question:")


@dataclasses.dataclass(frozen=True)
class RewriteBudget:
    """Limits on one rewrite.

    The transcript the model reads is cut to ``history_chars`` (each reply to
    ``reply_chars``) because reading it is the part of the call that cannot be stopped.
    """

    max_new_tokens: int = 64
    seconds: float = 15.0
    history_chars: int = 1200
    reply_chars: int = 300


@dataclasses.dataclass(frozen=True)
class Rewrite:
    """The question to search with, and why it is (or is not) the model's rewrite.

    ``output`` is what the model wrote, kept so the page can show a rejected or cut-off
    rewrite too; ``skipped`` is None when the rewrite was used.
    """

    question: str
    original: str
    skipped: RewriteSkip | None
    output: str = ""
    seconds: float = 0.0

    @property
    def rewritten(self) -> bool:
        """Whether ``question`` is the model's rewrite."""
        return self.skipped is None


def needs_context(question: str, lang: str) -> bool:
    """Whether a question asked after earlier turns depends on them to be understood.

    >>> needs_context("它什么时候发布的？", "zh"), needs_context("其他模型支持量化吗？", "zh")
    (True, False)
    >>> needs_context("What about its licence?", "en"), needs_context("Is it possible to run vLLM on a CPU?", "en")
    (True, False)
    """
    text = question.strip()
    return _needs_context_zh(text) if lang == "zh" else _needs_context_en(text)


def _needs_context_zh(text: str) -> bool:
    content = re.sub(r"[^\w]", "", text)
    if len(content) <= _ZH_SHORT:
        return True
    if _ZH_ELLIPSIS.search(text) and len(content) <= _ZH_ELLIPSIS_MAX:
        return True
    if re.fullmatch(r"(.{1,6})呢[？?]?", text) and not _ZH_QUESTION_WORD.search(text):
        return True
    masked = _ZH_NOT_CUES.sub(lambda m: "□" * len(m.group()), text)
    return any(not _named_before(text, m.start(), "zh") for m in _ZH_CUE.finditer(masked))


def _needs_context_en(text: str) -> bool:
    words = _EN_WORD.findall(text)
    if not [w for w in words if w.lower() not in _EN_EMPTY]:
        return True
    if _EN_ELLIPSIS.search(text):
        return True
    masked = _EN_TIME.sub("_", _EN_DUMMY_IT.sub("_", text))
    cues = [*_EN_PRONOUN.finditer(masked), *_EN_THAT.finditer(masked)]
    return any(not _named_before(masked, m.start(), "en") and not _named_earlier(masked, m) for m in cues)


def _named_earlier(text: str, cue: re.Match) -> bool:
    """Whether a possessive or object pronoun follows, in its sentence, words that name its owner.

    "Does early treatment shorten its duration?" is whole; "What is its licence?" is not.
    """
    if cue.group().lower() not in _EN_OWNED:
        return False
    # Three words, not two: "How much GPU memory does its server need?" still asks about "it".
    return _names_something(text[: cue.start()], "en", words=3)


def _named_before(text: str, at: int, lang: str) -> bool:
    """Whether the question itself names, before position ``at``, what a pronoun there refers to.

    A heading before a colon, semicolon or dash names its topic ("Staging laparoscopy: is it
    useful?"). A clause before a comma counts only when it states the user's own situation or
    names a term: "我在用 lmdeploy，它支持 AWQ 吗？" does, while "文革期间，他从事什么工作？"
    (tried on CMRC trial) does not.
    """
    strong = re.split(r"[：:；;]|--|—| - |[.。](?=\s)", text[:at])
    if len(strong) > 1 and _names_something("".join(strong[:-1]), lang):
        return True
    weak = re.split(r"[，,]", text[:at])
    if len(weak) < 2:
        return False
    head = "".join(weak[:-1])
    if lang == "zh":
        return bool(re.search(r"[A-Za-z]{2,}|《.+》|“.+”|「.+」|\".+\"|我", head))
    return _names_something(head, lang) and bool(re.search(r"\b(I|I'm|I've|we|we're|my|our)\b", head, re.I))


def _names_something(text: str, lang: str, words: int = 2) -> bool:
    if lang == "zh":
        return len(re.findall(f"[{_CJK}]", text)) >= 4 or bool(re.search(r"[A-Za-z]{2,}", text))
    return len([w for w in _EN_WORD.findall(text) if w.lower() not in _EN_EMPTY]) >= words


def check_rewrite(original: str, rewritten: str, lang: str) -> bool:
    """Whether ``rewritten`` can replace ``original``: one question, not an answer, on the same subject.

    >>> check_rewrite("它支持哪些量化？", "lmdeploy 支持哪些量化方式？", "zh")
    True
    >>> check_rewrite("How do I start it?", "To start the API server, you need to run lmdeploy serve.", "en")
    False
    """
    text = rewritten.strip()
    if not text or "\n" in text or len(text) > len(original.strip()) + _EXTRA_CHARS.get(lang, 120):
        return False
    asked = text.endswith(("？", "?"))
    if _ANSWER_START[_lang(lang)].match(text) or (_ANSWER_START_UNLESS_ASKED[_lang(lang)].match(text) and not asked):
        return False
    if not _one_question(text, lang):
        return False
    return _kept_share(original, text, lang) >= _KEPT_SHARE


def _lang(lang: str) -> str:
    return "zh" if lang == "zh" else "en"


def _one_question(text: str, lang: str) -> bool:
    marks = len(re.findall(r"[？?]", text))
    if marks > 1 or re.search(r"[。！!]|[.](\s|$)", text.rstrip("？?")):
        return False
    if marks == 1:
        return text.endswith(("？", "?"))
    if _INTERROGATIVE_START[_lang(lang)].match(text):
        return True
    return lang == "zh" and bool(_ZH_QUESTION_WORD.search(text) or text.endswith("呢"))


def _kept_share(original: str, rewritten: str, lang: str) -> float:
    """The share of the original's content (characters for Chinese, words otherwise) still there."""
    if lang == "zh":
        masked = _ZH_NOT_CUES.sub("", original)
        content = set(re.sub(r"[它他她其该此这那个们的吗呢？?，,。\s]", "", masked))
        kept = set(rewritten)
    else:
        content = {w.lower() for w in _EN_WORD.findall(original) if w.lower() not in _EN_EMPTY}
        kept = {w.lower() for w in _EN_WORD.findall(rewritten)}
    return len(content & kept) / len(content) if content else 1.0


def rewrite_followup(
    question: str,
    history: Sequence[BaseMessage],
    llm: BaseChatModel,
    lang: str,
    *,
    capable: bool,
    budget: RewriteBudget | None = None,
    stop: threading.Event | Callable[[], bool] | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Rewrite:
    """The question to search with after ``history``: a checked rewrite, or the original and why.

    ``capable`` is the model's catalog ``can_rewrite``. ``stop`` (an event or a callable) ends
    the rewrite early, as does the budget; ``on_text`` receives the output so far after each
    piece, so a page can show the rewrite as it is written. An exception raised by ``on_text``
    (Streamlit's rerun when Stop is pressed) ends generation and propagates.
    """
    if not history or not needs_context(question, lang):
        return Rewrite(question, question, "not needed")
    if not capable:
        return Rewrite(question, question, "model not capable")
    budget = budget or RewriteBudget()
    stopped = stop.is_set if isinstance(stop, threading.Event) else stop or (lambda: False)
    if stopped():
        return Rewrite(question, question, "stopped")
    prompt = fill(condense_prompt(lang), history=_transcript(history, lang, budget), question=question)
    started = time.monotonic()
    output, skipped = "", None
    # closing(): leaving the loop early must end generation now, not when the iterator is collected.
    with contextlib.closing(
        llm.stream([HumanMessage(prompt)], temperature=0.0, max_new_tokens=budget.max_new_tokens)
    ) as pieces:
        for count, chunk in enumerate(pieces, start=1):
            if stopped():
                skipped = "stopped"
                break
            output += chunk.text
            if on_text:
                on_text(output)
            if time.monotonic() - started > budget.seconds:
                skipped = "timed out"
                break
            # A question is one line: what follows it is the model answering or explaining.
            if count >= budget.max_new_tokens or _first_line(output, complete=True):
                break
    seconds = time.monotonic() - started
    if skipped:
        return Rewrite(question, question, skipped, output, seconds)
    candidate = _first_line(output, complete=False)
    if not check_rewrite(question, candidate, lang):
        return Rewrite(question, question, "rejected output", output, seconds)
    if candidate == question.strip():
        return Rewrite(question, question, "unchanged", output, seconds)
    return Rewrite(candidate, question, None, output, seconds)


def _first_line(output: str, complete: bool) -> str:
    """The first line with text, without a label or quotes; "" if ``complete`` and it may go on."""
    lines = output.split("\n")
    for i, line in enumerate(lines):
        text = line.strip()
        for label in _LABELS:
            text = text.removeprefix(label).strip()
        text = text.strip("\"'“”「」")
        if text:
            return text if not complete or i < len(lines) - 1 else ""
    return ""


def _transcript(history: Sequence[BaseMessage], lang: str, budget: RewriteBudget) -> str:
    """The latest turns as "User: ..." lines, replies shortened, within the budget."""
    user, assistant = ("用户", "助手") if lang == "zh" else ("User", "Assistant")
    lines: list[str] = []
    used = 0
    for message in reversed(history):
        if message.type == "human":
            line = f"{user}: {message.text}"
        else:
            line = f"{assistant}: {message.text[: budget.reply_chars]}"
        used += len(line)
        if lines and used > budget.history_chars:
            break
        lines.insert(0, line)
    return "\n".join(lines)
