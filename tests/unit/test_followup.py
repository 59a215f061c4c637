import threading
import time

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

from core.models.catalog import BUILTIN_MODELS, EMBEDDED_KEY, builtin_spec
from core.models.spec import ModelSpec
from core.rag.followup import RewriteBudget, check_rewrite, needs_context, rewrite_followup

HISTORY = [HumanMessage("lmdeploy 支持哪些量化方式？"), AIMessage("lmdeploy 支持 AWQ 和 KV cache int8 量化。[1]")]
HISTORY_EN = [HumanMessage("What is lmdeploy?"), AIMessage("A toolkit for serving LLMs. [1]")]


class CountingChat(GenericFakeChatModel):
    """Streams a fixed reply word by word (optionally slowly) and counts the pieces it was asked for."""

    prompts: list
    delay: float = 0.0
    pieces: int = 0
    closed: bool = False

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.prompts.append((messages[-1].content, kwargs))
        try:
            for chunk in super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
                time.sleep(self.delay)
                self.pieces += 1
                yield chunk
        finally:
            self.closed = True


def _llm(reply, delay=0.0):
    return CountingChat(messages=iter([AIMessage(reply)]), delay=delay, prompts=[])


@pytest.mark.parametrize(
    "question",
    [
        "它什么时候发布的？",
        "他的职业是什么？",
        "她是哪国人？",
        "该公司总部在哪里？",
        "其作者是谁？",
        "此书是谁写的？",
        "这个怎么安装？",
        "上述方法有什么缺点？",
        "那英文版呢？",
        "还有呢？",
        "为什么？",
        "怎么安装？",
        "2009年5月，它与哪家公司合作？",
        "文革期间，他从事什么工作？",
    ],
)
def test_chinese_follow_ups_need_context(question):
    assert needs_context(question, "zh")


@pytest.mark.parametrize(
    "question",
    [
        "lmdeploy 支持哪些量化方式？",
        "其他模型支持 int8 量化吗？",
        "锣鼓经是什么？",
        "我应该用哪个版本的 CUDA？",
        "吉他有几根弦？",
        "土耳其的首都是哪里？",
        "马其顿即将离任的总统是谁？",
        "那不勒斯在哪个国家？",
        "pip 安装 torch 时报错 CUDA 版本不匹配，这个问题怎么解决？",
        "我在用 lmdeploy，它支持 AWQ 吗？",
        "尚恩·菲南为什么会有“矮冬瓜”这个绰号？",
        "为什么修建广茂铁路？",
    ],
)
def test_chinese_questions_that_name_their_topic_do_not(question):
    assert not needs_context(question, "zh")


@pytest.mark.parametrize(
    "question",
    [
        "What about its licence?",
        "How do I install it?",
        "Does it support AWQ?",
        "Who maintains this?",
        "And the English version?",
        "Why?",
        "How do I install?",
        "Which one is faster?",
        "Can you tell me more about that?",
        "During the war, what did he do?",
    ],
)
def test_english_follow_ups_need_context(question):
    assert needs_context(question, "en")


@pytest.mark.parametrize(
    "question",
    [
        "What is lmdeploy?",
        "Is it possible to run vLLM on a CPU?",
        "How long does it take to install CUDA?",
        "Which GPUs does TensorRT-LLM support?",
        "Staging laparoscopy in hepatocellular carcinoma: is it useful?",
        "I installed lmdeploy yesterday, how do I update it?",
        "Does early migraine treatment reduce its severity?",
        "What changed this year in PyTorch?",
    ],
)
def test_english_questions_that_name_their_topic_do_not(question):
    assert not needs_context(question, "en")


@pytest.mark.parametrize(
    ("original", "rewritten", "lang"),
    [
        ("它支持哪些量化？", "lmdeploy 支持哪些量化方式？", "zh"),
        ("那英文版呢？", "《战国无双3》有英文版吗？", "zh"),
        ("它可以用 GPU 吗？", "lmdeploy 可以用 GPU 吗？", "zh"),
        ("How do I start it?", "How do I start the lmdeploy API server?", "en"),
        ("What about its licence?", "What is the licence of lmdeploy?", "en"),
    ],
)
def test_a_standalone_question_is_accepted(original, rewritten, lang):
    assert check_rewrite(original, rewritten, lang)


@pytest.mark.parametrize(
    ("original", "rewritten", "lang"),
    [
        ("How do I start it?", "To start the API server, you need to run lmdeploy serve.", "en"),
        ("How do I start it?", "You can start it with lmdeploy serve api_server?", "en"),
        ("Does it support AWQ?", "Yes, lmdeploy supports AWQ.", "en"),
        ("它支持哪些量化？", "首先，lmdeploy 支持 AWQ 量化。", "zh"),
        ("它支持哪些量化？", "可以使用 AWQ 和 int8 两种量化方式", "zh"),
        ("它支持哪些量化？", "lmdeploy 支持哪些量化？它们的精度如何？", "zh"),
        ("它支持哪些量化？", "lmdeploy 是什么？", "zh"),
        ("它支持哪些量化？", "", "zh"),
        ("它支持哪些量化？", "lmdeploy 支持哪些量化" + "，以及相关的各种参数设置和部署方式" * 4 + "？", "zh"),
    ],
)
def test_answers_and_unrelated_or_long_output_are_refused(original, rewritten, lang):
    assert not check_rewrite(original, rewritten, lang)


def test_a_follow_up_is_rewritten_and_the_rewrite_is_used():
    llm = _llm("lmdeploy 什么时候发布的？")
    seen = []
    result = rewrite_followup("它什么时候发布的？", HISTORY, llm, "zh", capable=True, on_text=seen.append)
    assert result.rewritten and result.question == "lmdeploy 什么时候发布的？"
    assert result.original == "它什么时候发布的？"
    assert seen[-1] == "lmdeploy 什么时候发布的？" and len(seen) > 1
    prompt, kwargs = llm.prompts[0]
    assert "它什么时候发布的？" in prompt and "lmdeploy 支持哪些量化方式？" in prompt
    assert kwargs["max_new_tokens"] == RewriteBudget().max_new_tokens and kwargs["temperature"] == 0.0


def test_a_labelled_rewrite_with_an_explanation_keeps_only_the_question():
    llm = _llm("独立问题：lmdeploy 什么时候发布的？\n这个问题问的是发布时间。")
    result = rewrite_followup("它什么时候发布的？", HISTORY, llm, "zh", capable=True)
    assert result.question == "lmdeploy 什么时候发布的？"
    assert "发布时间" not in result.output, "reading should stop at the end of the question's line"


def test_an_answer_in_place_of_a_rewrite_falls_back_to_the_question():
    llm = _llm("To start the API server, you need to run lmdeploy serve api_server.")
    result = rewrite_followup("How do I start it?", HISTORY_EN, llm, "en", capable=True)
    assert result.question == "How do I start it?" and result.skipped == "rejected output"
    assert result.output.startswith("To start the API server"), "the refused rewrite is kept to be shown"


def test_no_model_call_when_the_question_stands_alone_or_the_model_cannot():
    llm = _llm("unused")
    alone = rewrite_followup("lmdeploy 支持 AWQ 吗？", HISTORY, llm, "zh", capable=True)
    first = rewrite_followup("它支持 AWQ 吗？", [], llm, "zh", capable=True)
    weak = rewrite_followup("它支持 AWQ 吗？", HISTORY, llm, "zh", capable=False)
    assert (alone.skipped, first.skipped, weak.skipped) == ("not needed", "not needed", "model not capable")
    assert weak.question == "它支持 AWQ 吗？"
    assert llm.prompts == []


def test_the_time_budget_ends_a_slow_rewrite():
    llm = _llm("lmdeploy " * 40 + "是什么时候发布的？", delay=0.02)
    budget = RewriteBudget(seconds=0.1)
    result = rewrite_followup("它什么时候发布的？", HISTORY, llm, "zh", capable=True, budget=budget)
    assert result.skipped == "timed out" and result.question == "它什么时候发布的？"
    assert result.seconds < 0.5 and llm.pieces < 40


def test_the_token_budget_stops_reading():
    llm = _llm("lmdeploy " * 40 + "是什么时候发布的？")
    result = rewrite_followup(
        "它什么时候发布的？", HISTORY, llm, "zh", capable=True, budget=RewriteBudget(max_new_tokens=8)
    )
    assert llm.pieces == 8 and result.skipped == "rejected output"


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_stop_ends_the_rewrite_and_keeps_the_question(kind):
    event = threading.Event()
    stop = event if kind == "event" else event.is_set
    llm = _llm("lmdeploy " * 20 + "什么时候发布的？")
    result = rewrite_followup(
        "它什么时候发布的？", HISTORY, llm, "zh", capable=True, stop=stop, on_text=lambda _: event.set()
    )
    assert result.skipped == "stopped" and result.question == "它什么时候发布的？"
    assert llm.pieces == 2, "the piece after the stop is the last one read"


def test_an_error_while_showing_the_rewrite_ends_generation():
    class Rerun(Exception):
        pass

    def rerun(_):
        raise Rerun

    llm = _llm("lmdeploy " * 20 + "什么时候发布的？")
    with pytest.raises(Rerun):
        rewrite_followup("它什么时候发布的？", HISTORY, llm, "zh", capable=True, on_text=rerun)
    assert llm.closed and llm.pieces == 1


def test_a_stop_before_the_start_calls_no_model():
    stop = threading.Event()
    stop.set()
    llm = _llm("lmdeploy 什么时候发布的？")
    result = rewrite_followup("它什么时候发布的？", HISTORY, llm, "zh", capable=True, stop=stop)
    assert result.skipped == "stopped" and llm.prompts == []


def test_a_long_reply_is_shortened_in_the_transcript():
    history = [HumanMessage("lmdeploy 是什么？"), AIMessage("很长的回答。" * 200)]
    llm = _llm("lmdeploy 什么时候发布的？")
    rewrite_followup("它什么时候发布的？", history, llm, "zh", capable=True)
    prompt, _ = llm.prompts[0]
    assert "lmdeploy 是什么？" in prompt and prompt.count("很长的回答。") <= RewriteBudget().reply_chars // 6


def test_the_demo_model_does_not_rewrite_and_seven_b_rows_do():
    assert builtin_spec(EMBEDDED_KEY).can_rewrite is False
    assert all(spec.can_rewrite for spec in BUILTIN_MODELS if spec.params_b >= 7)
    assert ModelSpec(key="mine", name="Mine", family="llama", source="remote", params_b=0).can_rewrite
