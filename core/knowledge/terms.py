"""Words for keyword search: jieba cuts Chinese into words, other text splits into lowercase words.

Only runs of Chinese characters go through jieba: it walks other text character by
character in pure Python, which made it most of the reading cost of English documents.

Chunks are indexed with these terms when they are stored, and questions are cut the same
way, so keyword (BM25) search finds "量化" in "权重量化" and "quantization" in "Quantization".
"""

from __future__ import annotations

import functools
import logging
import re

# A run of CJK ideographs, else a version number ("v1.5", "2.0"), else letters and digits that
# are not CJK: "lmdeploy支持" is two runs, so the Latin word is a term of its own.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"([{_CJK}]+)|(v?\d+(?:\.\d+)+|[^\W_{_CJK}]+)", re.IGNORECASE)
# Function words that match almost every chunk; BM25 would weigh them low anyway, but
# dropping them keeps the keyword query short and fast.
_STOP_WORDS = (
    "的 了 是 在 和 与 或 及 也 都 就 而 但 这 那 有 为 对 把 被 让 给 从 向 到 吗 呢 吧 啊 哪些 什么 怎么 如何 "
    "a an the of to in on for and or is are was were be been by with as at it this that from what which how "
    "do does did can"
)
_STOP = frozenset(_STOP_WORDS.split())
# Raised whenever terms() cuts text differently: stored knowledge bases re-cut their chunks'
# terms and rebuild their keyword indexes on the next start (core/knowledge/records.py).
TERMS_VERSION = 2


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def terms(text: str) -> list[str]:
    """Search terms of ``text``, in order, lowercased, without punctuation or function words.

    >>> terms("LMDeploy 支持哪些量化方式？")
    ['lmdeploy', '支持', '量化', '方式']
    >>> terms("lmdeploy支持哪些量化方式")
    ['lmdeploy', '支持', '量化', '方式']
    >>> terms("Run api_server with InternLM2-7B v1.5 的权重量化")
    ['run', 'api', 'server', 'internlm2', '7b', 'v1.5', '权重', '量化']
    """
    words: list[str] = []
    for chinese, other in _RUN.findall(text):
        words += _jieba().cut_for_search(chinese) if chinese else [other.lower()]
    return [w for w in words if w not in _STOP]


def chunk_terms(heading: str, text: str) -> str:
    """What a chunk is indexed by: the terms of its heading path and text, space-separated.

    >>> chunk_terms("Guide > Install", "pip install lmdeploy")
    'guide install pip install lmdeploy'
    """
    return " ".join(terms(f"{heading}\n{text}" if heading else text))


def match_query(words: list[str]) -> str:
    """An FTS5 query matching any of ``words`` (each quoted, so no word is read as syntax).

    >>> print(match_query(["量化", 'a"b']))
    "量化" OR "a""b"
    """
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words))
