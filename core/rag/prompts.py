"""Prompt templates for grounded answers and question rewriting, in one place."""

from __future__ import annotations

import re

# The InternLM tutorial's template (InternLM/tutorial, langchain/readme.md), kept verbatim as
# the baseline the benchmarks compare against.
SEED_TEMPLATE_ZH = """使用以下上下文来回答最后的问题。如果你不知道答案，就说你不知道，不要试图编造答案。尽量使答案简明扼要。总是在回答的最后说“谢谢你的提问！”。
{context}
问题: {question}
有用的回答:"""

# Chosen on CMRC 2018 trial (bench.answers --cmrc-split trial --qwen-questions 90, the offline
# Qwen): the reference span in 44 of 90 answers against 37 with the earlier prompt, which had
# the model say "not found" for 8 answerable questions (now none); the price is fewer declines
# when the gold passage is withheld, 71 of 90 against 77.
QA_SYSTEM_PROMPT_ZH = (
    "你是一个严谨的知识库问答助手。只根据“资料”中的内容回答问题，不要使用资料以外的知识。"
    "先用一句话直接给出答案，尽量照抄资料原文中回答问题的词句，并在句末用 [编号] 标注资料来源，例如 [1]。"
    "只有当所有资料都与问题无关时，才回答“资料中没有找到相关内容”，不要编造。"
)
QA_SYSTEM_PROMPT_EN = (
    "You are a careful assistant that answers questions from a knowledge base. Answer only from "
    "the numbered sources below, never from other knowledge. If the sources do not contain the "
    'answer, say "The sources do not contain this." and nothing more. Be concise, and cite the '
    "sources you used as [n] after the sentence they support, e.g. [1]."
)
# The user-editable part: where the sources and the question go in the last message.
QA_TEMPLATE_ZH = "资料：\n{context}\n\n问题：{question}"
QA_TEMPLATE_EN = "Sources:\n{context}\n\nQuestion: {question}"

CHAT_SYSTEM_PROMPT_ZH = "你是一个乐于助人的助手。回答要准确、简洁。"
CHAT_SYSTEM_PROMPT_EN = "You are a helpful assistant. Answer accurately and concisely."

# One example shows the output's shape, since small models otherwise answer the question; its
# subject is far from any knowledge base so that it is not copied into rewrites.
CONDENSE_QUESTION_PROMPT_ZH = (
    "下面是一段对话和一个后续问题。请把后续问题改写成一个独立、完整的问题，使其不看对话也能理解：把“它”“这个”“该”等指代词换成所指的对象，补全省略的部分。"
    "只输出一行改写后的问题，以问号结尾；不要回答它，不要解释。\n\n"
    "示例：\n用户: 大熊猫吃什么？\n助手: 主要吃竹子。\n后续问题：它们生活在哪里？\n独立问题：大熊猫生活在哪里？\n\n"
    "对话：\n{history}\n\n后续问题：{question}\n独立问题："
)
CONDENSE_QUESTION_PROMPT_EN = (
    "Below are a conversation and a follow-up question. Rewrite the follow-up question as a "
    "standalone question that can be understood without the conversation: replace words such as "
    '"it", "this" or "they" with what they refer to, and fill in what is left out. Write only the '
    "rewritten question, on one line, ending with a question mark, in the language of the "
    "follow-up question; do not answer it or explain.\n\n"
    "Example:\nUser: What do giant pandas eat?\nAssistant: Mostly bamboo.\n"
    "Follow-up question: Where do they live?\nStandalone question: Where do giant pandas live?\n\n"
    "Conversation:\n{history}\n\nFollow-up question: {question}\nStandalone question:"
)

# How a model says the sources lack the answer: the instructions above ask for the first of
# each language's, and models also put it in their own words.
DECLINE_PHRASES = (
    "资料中没有",
    "没有找到相关",
    "未找到相关",
    "没有提到",
    "未提及",
    "无法回答",
    "do not contain",
    "does not contain",
    "don't contain",
    "doesn't contain",
    "not mentioned",
    "no information",
    "cannot answer",
    "can't answer",
)
# Said before the quotes shown under such a reply (see core.rag.answer.finished_text).
DECLINED_QUOTES_ZH = "模型认为资料中没有答案。以下是资料中与问题最接近的原句（直接引用）："
DECLINED_QUOTES_EN = (
    "The model found no answer in the sources. Their sentences closest to the question, quoted as they are:"
)

NO_CONTEXT_ZH = "（没有找到相关资料）"
NO_CONTEXT_EN = "(no relevant sources were found)"


def fill(template: str, **values: str) -> str:
    """``template`` with each ``{name}`` of ``values`` replaced, in one pass.

    Not ``PromptTemplate``: users edit the answer template, and its f-string parsing rejects
    other braces they may write (a reply shaped as {"answer": ...}). Not chained ``str.replace``:
    a source that happens to contain "{question}" would get the question pasted into it.

    >>> fill("Q: {question} C: {context} {other}", context="see {question}", question="why?")
    'Q: why? C: see {question} {other}'
    """
    names = "|".join(re.escape(name) for name in values)
    return re.sub(r"\{(" + names + r")\}", lambda m: values[m.group(1)], template)


def qa_system_prompt(lang: str) -> str:
    """The grounded-answer instructions in ``lang`` ("zh" or "en")."""
    return QA_SYSTEM_PROMPT_ZH if lang == "zh" else QA_SYSTEM_PROMPT_EN


def qa_template(lang: str) -> str:
    """The default editable template (variables: ``{context}``, ``{question}``) in ``lang``."""
    return QA_TEMPLATE_ZH if lang == "zh" else QA_TEMPLATE_EN


def chat_system_prompt(lang: str) -> str:
    """Instructions for chatting without a knowledge base."""
    return CHAT_SYSTEM_PROMPT_ZH if lang == "zh" else CHAT_SYSTEM_PROMPT_EN


def condense_prompt(lang: str) -> str:
    """The question-rewriting prompt (variables: ``{history}``, ``{question}``) in ``lang``."""
    return CONDENSE_QUESTION_PROMPT_ZH if lang == "zh" else CONDENSE_QUESTION_PROMPT_EN


def declines(text: str) -> bool:
    """Whether a reply says that the sources do not hold the answer.

    >>> declines("资料中没有找到相关内容。"), declines("The sources do not contain this."), declines("AWQ [1].")
    (True, True, False)
    """
    lowered = text.lower().replace("’", "'")
    return any(phrase in lowered for phrase in DECLINE_PHRASES)
