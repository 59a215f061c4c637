"""The chat path's own cost: per-question overhead at 15,000 chunks, and streaming speed.

- overhead: everything the app does per question beyond embedding the question (hybrid
  retrieval in Chroma and the BM25 index, fusion, relevance scores, reading the chunks,
  building the prompt), over a knowledge base of the InternLM docs' latest snapshot
  (~15,000 chunks). Query vectors come from the benchmark cache, so their computation is
  not counted.
- streaming: tokens per second of ``LocalChatModel.stream`` against bare ``model.generate``
  with the bundled model, the same prompt (one that makes both write every token allowed)
  and the same stop tokens, greedy, warm; 12 pairs of runs back to back in alternating order,
  the ratio being the median of the pairs' own ratios.

Run: python -m bench.chat [--quick]
"""

from __future__ import annotations

import random
import statistics
import time

from bench import data
from bench.cache import CACHE_DIR, CachedEmbeddings
from bench.harness import parser, report
from core.embeddings.factory import build_embeddings
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import AnswerSettings, prepare_answer
from core.rag.retrieval import SearchSettings
from core.services import Services, build_services
from core.settings import Settings

EMBEDDING = "all-minilm-l6-v2"


def knowledge_base(services: Services, quick: bool):
    """The latest/ snapshot (or one repository of it) as a knowledge base, built once and reused."""
    folder = data.LATEST_DOCS / "lagent" if quick else data.LATEST_DOCS
    name = f"bench-{folder.name}"
    existing = [kb for kb in services.knowledge.all() if kb.name == name]
    kb = existing[0] if existing else services.knowledge.create(name, EMBEDDING, SplitterSettings(500, 150, "chars"))
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    assert job.status == "done", job.error
    return kb


def questions(services: Services, kb, count: int) -> list[str]:
    """Questions made from the first words of random chunks (a fixed sample)."""
    chunks = services.knowledge.records.chunks(kb.id)
    picked = random.Random(3).sample(chunks, min(count, len(chunks)))
    return [" ".join(c.text.split()[:12]) for c in picked]


def overhead(services: Services, kb, asked: list[str]) -> list[float]:
    """Milliseconds per question of retrieval and prompt building, query embedding excluded."""
    embeddings = services.knowledge.embeddings.get(EMBEDDING)
    for question in asked:
        embeddings.embed_query(question)  # computed once, now served from the cache
    searcher = services.searcher()
    llm = services.models.chat_model()
    timings = []
    for question in asked:
        started = time.perf_counter()
        prepare_answer(question, [], llm, searcher, [kb], SearchSettings(), AnswerSettings(lang="en", rewrite=False))
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def stream_rates(services: Services, new_tokens: int, runs: int) -> tuple[float, float, float, int]:
    """Tokens/s of bare generate and of the chat model's stream, same prompt and stops.

    Returns both medians, the median of the ratio within each pair of runs, and the tokens
    written.

    The prompt asks for a long text, so both write all ``new_tokens`` and the rate is the
    decoding's, not the prompt's: a grounded answer from the bundled model is often a
    dozen tokens, which would mostly time the prompt.
    """
    import torch
    from langchain_core.messages import HumanMessage

    llm = services.models.chat_model(max_new_tokens=new_tokens, temperature=0.0)
    messages = [HumanMessage("Write a detailed essay about the history of computers.")]
    loaded = services.models.current
    tokenizer = loaded.tokenizer
    inputs = tokenizer(llm.render_prompt(messages), return_tensors="pt", add_special_tokens=False)
    stops = llm.stop_token_ids()
    penalty = llm.sampling_parameters()["repetition_penalty"]  # the row's default, used by both

    def bare() -> tuple[float, int]:
        started = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                do_sample=False,
                repetition_penalty=penalty,
                eos_token_id=stops,
                pad_token_id=stops[0],
            )
        # Counted as the stream's tokens are: the text, without the stop token, tokenized again.
        text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return time.perf_counter() - started, count(text)

    def ours() -> tuple[float, int]:
        started = time.perf_counter()
        text = "".join(chunk.text for chunk in llm.stream(messages))
        return time.perf_counter() - started, count(text)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    bare(), ours()  # warm
    bare_runs, our_runs = [], []
    for run in range(runs):
        # Pairs taken back to back, in alternating order: a shared machine's speed drifts by
        # more than the difference measured, so each pair is compared within itself.
        pair = (bare, ours) if run % 2 == 0 else (ours, bare)
        timed = {side: side() for side in pair}
        bare_runs.append(timed[bare])
        our_runs.append(timed[ours])
    bare_rate = statistics.median(n / s for s, n in bare_runs)
    our_rate = statistics.median(n / s for s, n in our_runs)
    ratio = statistics.median((n / s) / (bn / bs) for (s, n), (bs, bn) in zip(our_runs, bare_runs, strict=True))
    return bare_rate, our_rate, ratio, bare_runs[0][1]


def main() -> None:
    """Measure and print the table and the RESULT line."""
    options = parser(__doc__.splitlines()[0]).parse_args()
    services = build_services(
        Settings(data_dir=CACHE_DIR / "chat-data"),
        embedding_builder=lambda spec, batch, path: CachedEmbeddings(
            build_embeddings(spec, batch, folder=path), spec.key
        ),
    )
    kb = knowledge_base(services, options.quick)
    services.models.load(services.settings.default_model)
    chunks = services.knowledge.stats(kb).chunks
    asked = questions(services, kb, 20 if options.quick else 200)
    timings = overhead(services, kb, asked)
    new_tokens, pairs = (32, 2) if options.quick else (128, 12)
    bare_rate, our_rate, ratio, tokens = stream_rates(services, new_tokens, pairs)
    result = {
        "chunks": chunks,
        "questions": len(asked),
        "overhead_ms_p50": round(statistics.median(timings), 1),
        "overhead_ms_p90": round(sorted(timings)[int(0.9 * (len(timings) - 1))], 1),
        "bare_tok_s": round(bare_rate, 1),
        "stream_tok_s": round(our_rate, 1),
        "stream_rate_ratio": round(ratio, 3),
        "tokens": tokens,
    }
    report(
        "Chat path",
        ["measure", "value"],
        [
            ["chunks in the knowledge base", chunks],
            ["overhead per question, median (ms)", result["overhead_ms_p50"]],
            ["overhead per question, 90th percentile (ms)", result["overhead_ms_p90"]],
            ["bare generate (tokens/s)", bare_rate],
            ["chat model stream (tokens/s)", our_rate],
        ],
        result,
    )


if __name__ == "__main__":
    main()
