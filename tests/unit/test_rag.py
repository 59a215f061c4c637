import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from core.errors import InvalidTemplate
from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import AnswerSettings, Turn, cited_numbers, link_citations, prepare_answer, rag_chain
from core.rag.context import format_context
from core.rag.retrieval import KnowledgeRetriever, Searcher, SearchSettings, _fuse, _rank_fuse


class RecordingChat(GenericFakeChatModel):
    """Replies with fixed texts in turn and remembers the prompts it was given."""

    seen: list

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)


def _llm(*replies):
    return RecordingChat(messages=iter([AIMessage(r) for r in (replies or ("AWQ 和 int8 [1]",)) * 5]), seen=[])


FILES = {
    "quant.md": "# 量化\n\nlmdeploy 支持 AWQ 4bit 权重量化 和 KV cache int8 量化。\n",
    "cooking.md": "# Recipes\n\nBoil the pasta for ten minutes, then add the sauce.\n",
    "gpus.md": "# Hardware\n\nThe server runs on two GPUs with 80 GB memory each.\n",
    "release.md": "# Releases\n\nlmdeploy v0.2 was released in January 2024.\n",
}


@pytest.fixture
def kb(bases, tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    kb = bases.create("docs", "multilingual-e5-small-q4", SplitterSettings(300, 50))
    ready = prepare(bases, kb, FolderInput(root))
    Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=10**6).run()
    return kb


@pytest.mark.parametrize("mode", ["hybrid", "rrf", "dense", "mmr", "keyword"])
def test_every_search_mode_finds_the_file_that_answers(bases, kb, mode):
    hits = Searcher(bases).search("lmdeploy 支持 哪些 量化", [kb], SearchSettings(k=2, mode=mode))
    assert hits[0].chunk.path == "quant.md" and hits[0].rank == 1
    assert all(0.0 <= h.relevance <= 1.0 for h in hits)


def test_relevance_is_the_same_number_in_every_mode(bases, kb):
    def relevance(mode):
        hits = Searcher(bases).search("pasta sauce", [kb], SearchSettings(k=4, mode=mode))
        return {h.chunk.id: h.relevance for h in hits}

    scores = {mode: relevance(mode) for mode in ["hybrid", "rrf", "dense", "keyword"]}
    shared = set.intersection(*(set(s) for s in scores.values()))
    assert shared
    for cid in shared:
        assert len({s[cid] for s in scores.values()}) == 1


def test_threshold_leaves_out_irrelevant_chunks(bases, kb):
    everything = Searcher(bases).search("pasta", [kb], SearchSettings(k=4, threshold=0.0))
    cut = everything[0].relevance
    kept = Searcher(bases).search("pasta", [kb], SearchSettings(k=4, threshold=cut))
    assert [h.chunk.id for h in kept] == [h.chunk.id for h in everything if h.relevance >= cut]
    assert Searcher(bases).search("pasta", [kb], SearchSettings(k=4, threshold=1.01)) == []


def test_reranker_reorders_the_candidates(bases, kb):
    class PrefersGpus:
        def predict(self, pairs):
            return [1.0 if "GPUs" in text else 0.0 for _, text in pairs]

    hits = Searcher(bases, PrefersGpus()).search("lmdeploy 量化", [kb], SearchSettings(k=2, rerank=True))
    assert hits[0].chunk.path == "gpus.md"


def test_fusion_rewards_agreement_and_weighs_confidence():
    # "b" is second in both lists, but the keyword list is barely sure of "c" over it.
    assert _fuse([[("a", 0.9), ("b", 0.8), ("c", 0.1)], [("c", 10.0), ("b", 9.9), ("d", 1.0)]]) == ["b", "a", "c", "d"]
    assert _fuse([[("x", 0.3)], []]) == ["x"]


def test_rank_fusion_uses_only_the_ranks():
    # Found by both lists beats first in one; then rank alone decides, whatever the scores were.
    assert _rank_fuse([["a", "b", "c"], ["b", "d"]]) == ["b", "a", "d", "c"]
    assert _rank_fuse([["x"], []]) == ["x"]


def test_answer_returns_sources_then_a_grounded_prompt(bases, kb):
    llm = _llm()
    answer = prepare_answer(
        "lmdeploy 支持哪些量化？", [], llm, Searcher(bases), [kb], SearchSettings(k=2), AnswerSettings(lang="zh")
    )
    assert answer.hits[0].chunk.path == "quant.md" and not answer.rewritten
    pieces = list(answer.stream(llm))
    assert len(pieces) > 1 and "".join(pieces) == "AWQ 和 int8 [1]"
    system, human = llm.seen[0]
    assert "只根据" in system.content
    assert "[1] quant.md:1-3" in human.content and "AWQ 4bit" in human.content


def test_follow_up_question_is_rewritten_before_retrieval(bases, kb):
    llm = _llm("lmdeploy 是什么时候发布的？", "2024 年 1 月 [1]")
    history = [Turn("user", "lmdeploy 支持哪些量化？"), Turn("assistant", "AWQ 和 int8。")]
    answer = prepare_answer("它什么时候发布的？", history, llm, Searcher(bases), [kb], SearchSettings(k=1))
    assert answer.standalone == "lmdeploy 是什么时候发布的？" and answer.rewritten
    assert answer.hits[0].chunk.path == "release.md"
    rewrite_prompt = llm.seen[0][0].content
    assert "它什么时候发布的？" in rewrite_prompt and "lmdeploy 支持哪些量化？" in rewrite_prompt
    prompt = answer.messages
    assert [m.type for m in prompt] == ["system", "human", "ai", "human"]  # the history window


def test_rewriting_can_be_switched_off_and_a_bad_rewrite_is_ignored(bases, kb):
    history = [Turn("user", "lmdeploy?"), Turn("assistant", "A toolkit.")]
    off = prepare_answer("它呢？", history, _llm(), Searcher(bases), [kb], settings=AnswerSettings(rewrite=False))
    assert off.standalone == "它呢？"
    rambling = _llm("x" * 500)
    bad = prepare_answer("它呢？", history, rambling, Searcher(bases), [kb])
    assert bad.standalone == "它呢？"


def test_nothing_relevant_is_reported_instead_of_answered(bases, kb):
    answer = prepare_answer("pasta", [], _llm(), Searcher(bases), [kb], SearchSettings(threshold=1.01))
    assert answer.no_match and answer.hits == []


def test_without_a_knowledge_base_the_question_goes_to_the_model_with_history():
    llm = _llm("Hello!")
    answer = prepare_answer("hi", [Turn("user", "earlier"), Turn("assistant", "yes")], llm)
    assert not answer.grounded and not answer.no_match
    assert [m.type for m in answer.messages] == ["system", "human", "ai", "human"]
    assert "".join(answer.stream(llm)) == "Hello!"


def test_template_must_keep_its_placeholders(bases, kb):
    with pytest.raises(InvalidTemplate):
        prepare_answer("q", [], _llm(), Searcher(bases), [kb], settings=AnswerSettings(template="only {question}"))
    custom = prepare_answer(
        "pasta?",
        [],
        _llm(),
        Searcher(bases),
        [kb],
        SearchSettings(k=1),
        AnswerSettings(lang="en", template="Q: {question}\nCONTEXT:\n{context}"),
    )
    assert custom.messages[-1].content.startswith("Q: pasta?\nCONTEXT:\n[1] cooking.md")


def test_citations_are_parsed_and_linked():
    assert cited_numbers("AWQ [2] and int8 [1][2]; not [9].", 3) == [2, 1]
    assert link_citations("See [1] and [4].", {1: "#a"}) == "See [\\[1\\]](#a) and [4]."


def test_rag_chain_is_a_plain_langchain_runnable(bases, kb):
    chain = rag_chain(KnowledgeRetriever(bases=bases, kb_names=["docs"], k=1), _llm("ok"), "en")
    assert chain.invoke("pasta sauce") == "ok"


def test_context_numbers_sources_in_rank_order():
    docs = [
        Document("A", metadata={"path": "a.md", "start_line": 1, "end_line": 4}),
        Document("B", metadata={"path": "b.md"}),
    ]
    assert format_context(docs) == "[1] a.md:1-4\nA\n\n[2] b.md\nB"
