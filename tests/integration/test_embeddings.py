import numpy as np
import pytest

from core.embeddings.catalog import builtin_embedding
from core.embeddings.factory import build_embeddings

PASSAGES = [
    "LMDeploy 支持 AWQ 4bit 权重量化和 KV cache int8 量化。",
    "意大利面要煮十分钟，然后加入番茄酱。",
    "The server has two GPUs with 80 GB of memory each.",
]


@pytest.mark.parametrize(
    ("key", "question", "expected"),
    [
        ("multilingual-e5-small-q4", "lmdeploy 支持哪些量化方式？", 0),
        ("multilingual-e5-small-q4", "How much GPU memory does the server have?", 2),
        ("all-minilm-l6-v2", "How much GPU memory does the server have?", 2),
    ],
)
def test_bundled_models_rank_the_answering_passage_first(key, question, expected):
    embeddings = build_embeddings(builtin_embedding(key))
    docs = np.array(embeddings.embed_documents(PASSAGES))
    query = np.array(embeddings.embed_query(question))
    assert docs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-3)
    assert int(np.argmax(docs @ query)) == expected
