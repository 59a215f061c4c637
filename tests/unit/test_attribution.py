from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from core.rag.answer import cited_numbers, link_citations
from core.rag.attribution import Meaning, attribute, attributed_markdown

DOCS = [
    Document("LMDeploy supports AWQ 4-bit weight quantization and KV cache int8 quantization."),
    Document("The api_server listens on port 23333 by default; change it with --server-port."),
    Document("《战国无双3》由光荣和ω-force合作开发，于2009年12月3日在日本发售。"),
]


def _kinds(result):
    return [(result.text[s.start : s.end], s.kind, s.sources) for s in result.sentences]


def test_the_models_own_valid_citations_are_kept_as_cited():
    result = attribute("LMDeploy supports AWQ quantization [1]. The server uses port 23333 [2].", DOCS)
    assert [(kind, sources) for _, kind, sources in _kinds(result)] == [("cited", (1,)), ("cited", (2,))]
    assert attributed_markdown(result) == "LMDeploy supports AWQ quantization [1]. The server uses port 23333 [2]."


def test_citations_that_point_nowhere_are_dropped_and_the_sentence_is_matched_instead():
    result = attribute("The api_server listens on port 23333 by default [7].", DOCS)
    assert result.dropped == (7,)
    assert "[7]" not in result.text
    assert _kinds(result) == [("The api_server listens on port 23333 by default.", "matched", (2,))]
    assert cited_numbers(attributed_markdown(result), len(DOCS)) == [2]


def test_an_uncited_sentence_is_matched_to_the_passage_that_supports_it():
    result = attribute("战国无双3是光荣和ω-force合作开发的。它在日本发售。", DOCS)
    first = result.sentences[0]
    assert (first.kind, first.sources) == ("matched", (3,))
    assert first.support >= 0.5


def test_a_sentence_no_passage_supports_is_marked_unsupported():
    answer = "LMDeploy supports AWQ quantization [1]. Bananas grow quickly in tropical greenhouses."
    result = attribute(answer, DOCS)
    assert [kind for _, kind, _ in _kinds(result)] == ["cited", "unsupported"]
    assert result.sentences[1].sources == ()
    assert attributed_markdown(result).endswith("Bananas grow quickly in tropical greenhouses. *[?]*")


def test_short_sentences_and_code_are_left_unmarked():
    answer = "Yes.\n\n```\nlmdeploy serve api_server ./model\n```\n"
    result = attribute(answer, DOCS)
    assert [kind for _, kind, _ in _kinds(result)] == ["plain", "plain"]
    assert attributed_markdown(result) == answer


def test_brackets_inside_code_are_not_taken_for_citations():
    answer = "Read the first item with `items[0]` [9].\n\n```\nprint(items[0], items[8])\n```\n"
    result = attribute(answer, DOCS)
    assert result.dropped == (9,)
    assert result.text == "Read the first item with `items[0]`.\n\n```\nprint(items[0], items[8])\n```\n"


def test_matched_citations_read_apart_from_cited_ones_and_still_link():
    answer = "- AWQ 4-bit weight quantization is supported [1].\n- The api_server listens on port 23333 by default.\n"
    markdown = attributed_markdown(attribute(answer, DOCS))
    assert markdown.splitlines() == [
        "- AWQ 4-bit weight quantization is supported [1].",
        "- The api_server listens on port 23333 by default. *[2]*",
    ]
    linked = link_citations(markdown, {1: "#src-1", 2: "#src-2"})
    assert "[\\[1\\]](#src-1)" in linked and "*[\\[2\\]](#src-2)*" in linked


def test_a_stricter_threshold_turns_weak_matches_into_unsupported_ones():
    answer = "The api_server listens on port 23333 by default, unless you pick another port yourself."
    assert attribute(answer, DOCS, threshold=0.3).sentences[0].kind == "matched"
    assert attribute(answer, DOCS, threshold=0.95).sentences[0].kind == "unsupported"


def test_without_sources_every_claim_is_unsupported():
    result = attribute("LMDeploy supports AWQ quantization [1].", [])
    assert result.dropped == (1,)
    assert _kinds(result) == [("LMDeploy supports AWQ quantization.", "unsupported", ())]


def test_a_citation_of_a_source_that_does_not_support_the_sentence_is_corrected():
    # The model cites [1] (quantization) for a sentence about the server's port, which [2] holds.
    result = attribute("The api_server listens on port 23333 by default [1].", DOCS)
    assert result.corrected == (1,) and result.dropped == ()
    assert _kinds(result) == [("The api_server listens on port 23333 by default.", "matched", (2,))]
    assert cited_numbers(attributed_markdown(result), len(DOCS)) == [2]


def test_a_weakly_supported_citation_stays_when_no_other_source_does_better():
    result = attribute("Bananas grow quickly in tropical greenhouses [1].", DOCS)
    assert result.corrected == () and _kinds(result)[0][1:] == ("cited", (1,))


TOPICS = {"quantiz": 0, "4-bit": 0, "compress": 0, " port": 1, "listen": 1, "战国": 2, "game": 2}


class _Topics(Embeddings):
    """Vectors by topic: texts naming the same topic point the same way, whatever their words."""

    def _vector(self, text: str) -> list[float]:
        vector = [0.05, 0.05, 0.05]
        for word, axis in TOPICS.items():
            if word in text.lower():
                vector[axis] += 1.0
        return vector

    def embed_documents(self, texts):
        return [self._vector(t) for t in texts]

    def embed_query(self, text):
        return self._vector(text)


def test_a_reworded_sentence_is_matched_by_meaning_when_its_embedding_is_close_enough():
    reworded = "Weights can be compressed to a quarter of their size."
    assert _kinds(attribute(reworded, DOCS)) == [(reworded, "unsupported", ())]  # too few shared words
    close = attribute(reworded, DOCS, meaning=Meaning(_Topics, threshold=0.9))
    ((_, kind, sources),) = _kinds(close)
    assert (kind, sources) == ("matched", (1,)) and close.sentences[0].support > 0.9
    # Below the row's threshold it stays unsupported; and the model's own citations are left alone.
    assert _kinds(attribute(reworded, DOCS, meaning=Meaning(_Topics, threshold=0.9999)))[0][1] == "unsupported"
    cited = attribute("The server listens on port 23333 [2].", DOCS, meaning=Meaning(_Topics, threshold=0.9))
    assert _kinds(cited)[0][1:] == ("cited", (2,))


def test_the_embedding_model_is_asked_for_only_when_a_sentence_needs_matching_by_meaning():
    def unbuilt():
        raise AssertionError("the embedding model was built although every sentence was matched by words")

    result = attribute("The api_server listens on port 23333 by default.", DOCS, meaning=Meaning(unbuilt, 0.9))
    assert _kinds(result)[0][1:] == ("matched", (2,))
