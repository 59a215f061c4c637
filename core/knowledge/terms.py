"""Words for keyword search: jieba cuts Chinese into words, other text splits into lowercase words.

Chunks are indexed with these terms when they are stored, and questions are cut the same
way, so keyword (BM25) search finds "量化" in "权重量化" and "quantization" in "Quantization".
"""

from __future__ import annotations

import functools
import logging
import re

_WORD = re.compile(r"\w", re.UNICODE)
# Function words that match almost every chunk; BM25 would weigh them low anyway, but
# dropping them keeps the keyword query short and fast.
_STOP_WORDS = (
    "的 了 是 在 和 与 或 及 也 都 就 而 但 这 那 有 为 对 把 被 让 给 从 向 到 吗 呢 吧 啊 哪些 什么 怎么 如何 "
    "a an the of to in on for and or is are was were be been by with as at it this that from what which how "
    "do does did can"
)
_STOP = frozenset(_STOP_WORDS.split())


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def terms(text: str) -> list[str]:
    """Search terms of ``text``, in order, lowercased, without punctuation or function words.

    >>> terms("LMDeploy 支持哪些量化方式？")
    ['lmdeploy', '支持', '量化', '方式']
    """
    words = (w.strip().lower() for w in _jieba().cut_for_search(text))
    return [w for w in words if w and _WORD.search(w) and w not in _STOP]


def match_query(words: list[str]) -> str:
    """An FTS5 query matching any of ``words`` (each quoted, so no word is read as syntax).

    >>> print(match_query(["量化", 'a"b']))
    "量化" OR "a""b"
    """
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in dict.fromkeys(words))
