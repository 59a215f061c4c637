from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import answer, rag_chain
from core.rag.context import format_context
from core.rag.prompts import qa_prompt
from core.rag.retrieval import KnowledgeRetriever


class RecordingChat(GenericFakeChatModel):
    """Replies with a fixed text and remembers the prompts it was given."""

    seen: list

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(messages)
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)


def _llm(reply="AWQ 和 int8 [1]"):
    return RecordingChat(messages=iter([AIMessage(reply)] * 5), seen=[])


def _kb_with(bases, tmp_path, files):
    root = tmp_path / "src"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    kb = bases.create("docs", "multilingual-e5-small-q4", SplitterSettings(300, 50))
    ready = prepare(bases, kb, FolderInput(root))
    Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=10**6).run()
    return kb


FILES = {
    "quant.md": "# 量化\n\nlmdeploy 支持 AWQ 4bit 权重量化 和 KV cache int8 量化。\n",
    "cooking.md": "# Recipes\n\nBoil the pasta for ten minutes, then add the sauce.\n",
    "gpus.md": "# Hardware\n\nThe server runs on two GPUs with 80 GB memory each.\n",
}


def test_retriever_finds_the_file_that_answers(bases, tmp_path):
    _kb_with(bases, tmp_path, FILES)
    docs = KnowledgeRetriever(bases=bases, kb_names=["docs"], k=2).invoke("lmdeploy 支持 哪些 量化")
    assert docs[0].metadata["path"] == "quant.md"
    assert docs[0].metadata["start_line"] == 1 and docs[0].metadata["rank"] == 1
    assert 0 <= docs[1].metadata["score"] <= docs[0].metadata["score"] <= 1


def test_answer_returns_sources_then_streams_a_grounded_reply(bases, tmp_path):
    _kb_with(bases, tmp_path, FILES)
    llm = _llm()
    result = answer("lmdeploy 支持哪些量化？", KnowledgeRetriever(bases=bases, kb_names=["docs"], k=2), llm, "zh")
    assert result.sources[0].metadata["path"] == "quant.md"
    pieces = list(result.tokens)
    assert len(pieces) > 1 and "".join(pieces) == "AWQ 和 int8 [1]"
    system, human = llm.seen[0]
    assert "只根据" in system.content
    assert "[1] quant.md:1-3" in human.content and "AWQ 4bit" in human.content


def test_without_a_knowledge_base_the_question_goes_straight_to_the_model():
    llm = _llm("Hello!")
    result = answer("hi", None, llm, "en")
    assert result.sources == [] and "".join(result.tokens) == "Hello!"
    assert llm.seen[0][0].content == "hi"


def test_english_prompt_tells_the_model_to_admit_missing_answers():
    system, human = qa_prompt("en").format_messages(context="[1] a.md:1\nx", question="Why?")
    assert "only from" in system.content and "do not contain" in system.content
    assert human.content.endswith("Question: Why?")


def test_rag_chain_is_a_plain_langchain_runnable(bases, tmp_path):
    _kb_with(bases, tmp_path, FILES)
    chain = rag_chain(KnowledgeRetriever(bases=bases, kb_names=["docs"], k=1), _llm("ok"), "en")
    assert chain.invoke("pasta sauce") == "ok"


def test_context_numbers_sources_in_rank_order():
    docs = [
        Document("A", metadata={"path": "a.md", "start_line": 1, "end_line": 4}),
        Document("B", metadata={"path": "b.md"}),
    ]
    assert format_context(docs) == "[1] a.md:1-4\nA\n\n[2] b.md\nB"
