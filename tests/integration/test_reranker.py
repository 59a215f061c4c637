"""The reranker with a real cross-encoder: a tiny BERT trained in the test, saved to a folder,
added as the Models page adds one ("a local folder", kind reranker), loaded by the app's own
factory (sentence-transformers' CrossEncoder) and used by search, the Chat page's pipeline and
an evaluation, over a knowledge base built with the bundled embedding model.

The tiny model is trained to prefer the chunks retrieval ranks last, so a search that ignored
it would come back in retrieval order and fail these tests.
"""

from __future__ import annotations

import pytest
from sentence_transformers import CrossEncoder

from core.embeddings.custom import embedding_row
from core.evaluation import EvalSettings, Question
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import AnswerSettings, prepare_answer
from core.rag.retrieval import SearchSettings
from core.services import build_services
from core.settings import Settings
from tests.tiny_models import build_tiny_cross_encoder

FILES = {
    "quant.md": "# Quantization\n\nlmdeploy supports AWQ 4bit weight quantization and KV cache int8 quantization.\n",
    "release.md": "# Releases\n\nlmdeploy v0.2 was released in January 2024 with faster quantization kernels.\n",
    "gpus.md": "# Hardware\n\nThe server runs on two GPUs with 80 GB memory each.\n",
    "pasta.md": "# Pasta\n\nBoil the pasta for ten minutes, then add the sauce.\n",
}
QUERY = "Which quantization methods does lmdeploy support?"
EVERYTHING = SearchSettings(k=len(FILES), threshold=0.0)  # no floor: every file is a candidate
RERANKED = SearchSettings(k=len(FILES), threshold=0.0, rerank=True)


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """The app's services over a fresh data folder, with the bundled embedding model."""
    root = tmp_path_factory.mktemp("reranker")
    return build_services(Settings(data_dir=root / "data"))


@pytest.fixture(scope="module")
def kb(services, tmp_path_factory):
    """A knowledge base of FILES, one chunk each."""
    docs = tmp_path_factory.mktemp("docs")
    for name, text in FILES.items():
        (docs / name).write_text(text, encoding="utf-8")
    kb = services.knowledge.create("rerank docs", services.settings.default_embedding, SplitterSettings(500, 100))
    assert services.jobs.wait(services.start_ingest(kb, FolderInput(docs)).id, timeout=300).status == "done"
    return kb


@pytest.fixture(scope="module")
def retrieved(services, kb):
    """The chunks as search alone orders them: (path, text, relevance)."""
    hits = services.searcher().search(QUERY, [kb], EVERYTHING)
    assert sorted(h.chunk.path for h in hits) == sorted(FILES)
    return [(h.chunk.path, h.chunk.text, h.relevance) for h in hits]


@pytest.fixture(scope="module")
def model_folder(retrieved, tmp_path_factory):
    """A tiny cross-encoder trained to score the chunks in the reverse of retrieval's order."""
    targets = [0.1, 0.35, 0.6, 0.85]  # retrieval's first gets the lowest score
    examples = [(QUERY, text, target) for (_, text, _), target in zip(retrieved, targets, strict=True)]
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("models") / "tiny-reranker", examples)


@pytest.fixture(scope="module")
def row(services, model_folder):
    """The tiny model as the user's own reranker row, added as the Models page adds one."""
    row = embedding_row(str(model_folder), "reranker")
    services.knowledge.embeddings.registry.add(row)
    return row


def model_order(folder, texts):
    """Indexes of ``texts`` by the saved model's own score for (QUERY, text), best first,
    computed with plain transformers (not the app's code) and the scores themselves."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        batch = tokenizer([QUERY] * len(texts), texts, padding=True, truncation=True, return_tensors="pt")
        scores = model(**batch).logits[:, 0].tolist()
    return sorted(range(len(texts)), key=lambda i: -scores[i]), scores


def test_a_cross_encoder_in_a_folder_is_offered_as_a_reranker(services, row):
    assert row.kind == "reranker" and row.backend == "sentence-transformers"
    assert [r.key for r in services.rerankers()] == [row.key]  # the catalog's are not downloaded


def test_the_searcher_loads_the_cross_encoder_from_the_folder_once(services, row, model_folder):
    searcher = services.searcher(row.key)
    assert isinstance(searcher.reranker, CrossEncoder)
    assert services.searcher(row.key).reranker is searcher.reranker  # loaded once, kept
    assert services.searcher().reranker is None and services.searcher(None).reranker is None


def test_the_reranker_orders_the_chunks_as_the_model_scores_them(services, kb, row, model_folder, retrieved):
    order, scores = model_order(model_folder, [text for _, text, _ in retrieved])
    assert len(set(scores)) == len(scores)  # no ties: the order is the model's alone
    expected = [retrieved[i][0] for i in order]
    assert expected == [path for path, _, _ in reversed(retrieved)]  # what it was trained to do

    hits = services.searcher(row.key).search(QUERY, [kb], RERANKED)
    assert [h.chunk.path for h in hits] == expected
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    # Reranking changes the order only: each chunk keeps the relevance search gave it.
    relevance = {path: value for path, _, value in retrieved}
    assert all(h.relevance == relevance[h.chunk.path] for h in hits)


def test_the_reranker_runs_only_where_it_is_switched_on(services, kb, row, retrieved, monkeypatch):
    searcher = services.searcher(row.key)
    real = searcher.reranker.predict
    calls = []

    def predict(pairs, *args, **kwargs):
        calls.append(list(pairs))
        return real(pairs, *args, **kwargs)

    monkeypatch.setattr(searcher.reranker, "predict", predict)
    in_retrieval_order = [path for path, _, _ in retrieved]
    assert [h.chunk.path for h in searcher.search(QUERY, [kb], EVERYTHING)] == in_retrieval_order
    assert [h.chunk.path for h in services.searcher().search(QUERY, [kb], RERANKED)] == in_retrieval_order
    assert calls == []

    top = searcher.search(QUERY, [kb], SearchSettings(k=1, threshold=0.0, rerank=True))
    assert calls == [[(QUERY, text) for _, text, _ in retrieved]]  # every kept chunk, before the cut to k
    assert [h.chunk.path for h in top] == [in_retrieval_order[-1]]


def test_the_chat_pipeline_answers_from_the_reranked_chunks(services, kb, row, retrieved):
    # What the Chat page does with a reranker picked: app.searcher(key) and rerank=True.
    search = SearchSettings(k=2, threshold=0.0, rerank=True)
    answer = prepare_answer(QUERY, [], None, services.searcher(row.key), [kb], search, AnswerSettings(mode="sources"))
    assert [d.metadata["path"] for d in answer.docs] == [retrieved[-1][0], retrieved[-2][0]]
    assert retrieved[-1][1] in answer.messages[-1].content  # the prompt's first source


def test_an_evaluation_with_the_reranker_uses_it(services, kb, row, retrieved):
    last = retrieved[-1][0]
    questions = [Question(QUERY, source=last)]

    def run(reranker):
        settings = EvalSettings(k=len(FILES), threshold=0.0, reranker=reranker)
        job = services.jobs.wait(services.start_evaluation(kb, questions, settings, "rerank").id, timeout=120)
        assert job.status == "done", job.error
        (found,) = [r for r in services.evaluations.runs() if r.id == job.result["run"]]
        return found.rows[0]

    assert run(None)["rank"] == len(FILES)
    reranked = run(row.key)
    assert reranked["rank"] == 1 and reranked["retrieved"] == [path for path, _, _ in reversed(retrieved)]
