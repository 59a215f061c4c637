"""Prompt templates for grounded answers, in one place."""

from __future__ import annotations

from langchain_core.prompts import ChatPromptTemplate

# The InternLM tutorial's template (InternLM/tutorial, langchain/readme.md), kept verbatim as
# the baseline the benchmarks compare against.
SEED_TEMPLATE_ZH = """使用以下上下文来回答最后的问题。如果你不知道答案，就说你不知道，不要试图编造答案。尽量使答案简明扼要。总是在回答的最后说“谢谢你的提问！”。
{context}
问题: {question}
有用的回答:"""

QA_SYSTEM_PROMPT_ZH = (
    "你是一个严谨的知识库问答助手。只根据“资料”中的内容回答问题，不要使用资料以外的知识。"
    "如果资料中没有答案，就直接回答“资料中没有找到相关内容”，不要编造。"
    "回答要简明扼要，并在所依据的句子后用 [编号] 标注资料来源，例如 [1]。"
)
QA_HUMAN_PROMPT_ZH = "资料：\n{context}\n\n问题：{question}"

QA_SYSTEM_PROMPT_EN = (
    "You are a careful assistant that answers questions from a knowledge base. Answer only from "
    "the numbered sources below, never from other knowledge. If the sources do not contain the "
    'answer, say "The sources do not contain this." and nothing more. Be concise, and cite the '
    "sources you used as [n] after the sentence they support, e.g. [1]."
)
QA_HUMAN_PROMPT_EN = "Sources:\n{context}\n\nQuestion: {question}"

NO_CONTEXT_ZH = "（没有找到相关资料）"
NO_CONTEXT_EN = "(no relevant sources were found)"


def qa_prompt(lang: str) -> ChatPromptTemplate:
    """The grounded-answer prompt in ``lang`` ("zh" or "en"); variables: context, question."""
    if lang == "zh":
        return ChatPromptTemplate.from_messages([("system", QA_SYSTEM_PROMPT_ZH), ("human", QA_HUMAN_PROMPT_ZH)])
    return ChatPromptTemplate.from_messages([("system", QA_SYSTEM_PROMPT_EN), ("human", QA_HUMAN_PROMPT_EN)])


def seed_prompt() -> ChatPromptTemplate:
    """The tutorial's single-message prompt, for comparisons."""
    return ChatPromptTemplate.from_messages([("human", SEED_TEMPLATE_ZH)])
