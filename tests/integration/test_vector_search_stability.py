"""Dense search gives the same lists in every process that opens the same data folder."""

import json
import subprocess
import sys

import chromadb
import numpy as np

from core.knowledge import vectors

QUERY = """
import json, sys
import chromadb
import numpy as np
from core.knowledge import vectors
client = chromadb.PersistentClient(path=sys.argv[1])
found = vectors.collection(client, "kb-1", "m")
queries = np.random.default_rng(1).normal(size=(300, 48)).astype("float32")
print(json.dumps([found.query(query_embeddings=[q.tolist()], n_results=10)["ids"][0] for q in queries]))
"""


def _lists(path):
    out = subprocess.run([sys.executable, "-c", QUERY, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_processes_get_the_same_top_ten(tmp_path):
    client = chromadb.PersistentClient(path=str(tmp_path))
    found = vectors.collection(client, "kb-1", "m")
    # More than Chroma persists at once (1,000), so the rest are re-inserted by each process.
    points = np.random.default_rng(0).normal(size=(2600, 48)).astype("float32")
    for start in range(0, len(points), 500):
        ids = [str(i) for i in range(start, min(start + 500, len(points)))]
        found.add(ids=ids, embeddings=points[start : start + 500].tolist())
    del client, found
    first, second = _lists(tmp_path), _lists(tmp_path)
    assert first == second
    assert (
        vectors.collection(chromadb.PersistentClient(path=str(tmp_path)), "kb-1", "m").configuration["hnsw"][
            "ef_search"
        ]
        >= vectors.EF_SEARCH
    )
