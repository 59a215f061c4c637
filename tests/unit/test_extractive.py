from langchain_core.documents import Document

from core.rag.answer import link_citations
from core.rag.context import snippet
from core.rag.extractive import QuickAnswer, cost, highlights, quick_answer, quick_answer_markdown
from core.rag.sentences import split_sentences

GAME = (
    "《战国无双3》是日本光荣公司开发的动作游戏。游戏于2009年12月3日在日本发售。"
    "本作由光荣和ω-force合作开发，并由任天堂发行！玩家可以操作四十名以上的武将。"
)
WEATHER = "今天北京天气晴朗，最高气温二十五度。明天可能有小雨；请带伞。"
GUIDE = """# Install

LMDeploy supports AWQ 4-bit weight quantization, e.g. for
InternLM2 models. It also supports KV cache int8.

- Run the server with the command below.
- The default port is 23333.

```
lmdeploy serve api_server ./model --server-port 23333
```
"""


def test_sentences_end_at_chinese_and_english_punctuation_and_at_list_items():
    text = "第一句。第二句！第三句？第四句；Version 3.5 is out, e.g. today. Next one.\n- item\n## Heading\n"
    assert [s.text for s in split_sentences(text)] == [
        "第一句。",
        "第二句！",
        "第三句？",
        "第四句；",
        "Version 3.5 is out, e.g. today.",
        "Next one.",
        "item",
        "Heading",
    ]


def test_sentences_keep_code_blocks_whole_and_join_wrapped_lines():
    sentences = split_sentences(GUIDE)
    texts = [s.text for s in sentences]
    assert "LMDeploy supports AWQ 4-bit weight quantization, e.g. for InternLM2 models." in texts
    code = [s for s in sentences if s.code]
    assert [s.text for s in code] == ["lmdeploy serve api_server ./model --server-port 23333"]
    for sentence in sentences:
        # The span covers the sentence in the original text, line breaks included.
        assert " ".join(GUIDE[sentence.start : sentence.end].split()) == " ".join(sentence.text.split())


def test_a_citation_after_the_full_stop_stays_with_its_sentence():
    assert [s.text for s in split_sentences("光荣开发的。[1] It ships in 2009. [2] Done.")] == [
        "光荣开发的。[1]",
        "It ships in 2009. [2]",
        "Done.",
    ]


def test_quick_answer_quotes_the_answering_sentence_with_its_source_number():
    docs = [Document(WEATHER), Document(GAME)]
    answer = quick_answer("这款游戏在日本什么时候发售？", docs)
    best = answer.quotes[0]
    assert best.text == "游戏于2009年12月3日在日本发售。"
    assert best.source == 2
    assert docs[1].page_content[best.start : best.end] == best.text
    assert 2 in answer.sources and 1 not in answer.sources


def test_quick_answer_never_quotes_words_that_are_not_in_the_sources():
    docs = [Document(GAME), Document(GUIDE), Document(WEATHER)]
    for question in ("游戏什么时候发售？", "What port does the server use?", "明天天气怎样？"):
        for quote in quick_answer(question, docs).quotes:
            source = docs[quote.source - 1].page_content
            assert " ".join(source[quote.start : quote.end].split()) == " ".join(quote.text.split())


def test_quick_answer_finds_english_list_items_and_code():
    answer = quick_answer("Which command runs the api_server, and on what port?", [Document(GUIDE)])
    texts = [q.text for q in answer.quotes]
    assert "lmdeploy serve api_server ./model --server-port 23333" in texts
    markdown = quick_answer_markdown(answer)
    assert "```\nlmdeploy serve api_server ./model --server-port 23333\n```\n[1]" in markdown


COMPRESSOR = """# llm-compressor 支持

目前支持的 `llm-compressor` 量化模型包括：

- int4 量化（例如 AWQ、GPTQ）
- int8 量化（例如 SmoothQuant）

上述量化模型通过 TurboMind 引擎运行。
"""


def test_a_sentence_that_introduces_a_list_is_quoted_with_its_items_and_highlighted_with_them():
    answer = quick_answer("lmdeploy 支持哪些量化模型？", [Document(COMPRESSOR)])
    listed = [q for q in answer.quotes if q.text.startswith("目前支持的")]
    assert [q.text for q in listed] == [
        "目前支持的 `llm-compressor` 量化模型包括：int4 量化（例如 AWQ、GPTQ）；int8 量化（例如 SmoothQuant）"
    ]
    # The items are not quoted a second time, and the highlight runs from the sentence to the last item.
    assert not [q for q in answer.quotes if q.text.startswith("int")]
    marked = "".join(text for text, quoted in highlights(COMPRESSOR, answer.quotes, 1) if quoted)
    assert "包括：\n\n- int4 量化（例如 AWQ、GPTQ）\n- int8 量化（例如 SmoothQuant）" in marked


def test_a_list_is_quoted_only_as_far_as_the_length_budget_allows():
    items = "\n".join(f"- 第{i}种量化方式的名称相当长需要很多字来描述它" for i in range(30))
    answer = quick_answer("支持哪些量化方式？", [Document(f"支持的量化方式包括：\n\n{items}\n")])
    assert sum(len(q.text) for q in answer.quotes) <= 250
    assert answer.quotes[0].text.startswith("支持的量化方式包括：第0种")


def test_quick_answer_stays_within_three_sentences_and_the_length_budget():
    long_sentence = "光荣公司开发的游戏" * 60 + "。"  # 541 characters, all on topic
    docs = [Document(long_sentence + GAME * 3)]
    answer = quick_answer("光荣公司开发了什么游戏？", docs)
    assert 1 <= len(answer.quotes) <= 3
    assert sum(cost(q.text, chinese=True) for q in answer.quotes) <= 1.0
    assert sum(len(q.text) for q in answer.quotes) <= 250


def test_an_english_quick_answer_stays_within_sixty_words():
    text = " ".join(
        f"Server {i} supports weight quantization, and it keeps running well on small machines with little "
        "memory, as many users have reported from many places over the last two years."
        for i in range(6)
    )  # six sentences of 29 words, all on topic
    answer = quick_answer("Which quantization does the server support?", [Document(text)])
    assert len(answer.quotes) == 2
    assert sum(len(q.text.split()) for q in answer.quotes) <= 60


def test_a_sentence_repeated_by_overlapping_chunks_is_quoted_once_from_the_first():
    docs = [Document(GAME), Document(GAME[20:])]
    answer = quick_answer("战国无双3由哪两个公司合作开发？", docs)
    texts = [q.text for q in answer.quotes]
    assert len(texts) == len(set(texts))
    assert answer.quotes[0].source == 1


def test_quick_answer_is_empty_when_no_sentence_shares_a_word_with_the_question():
    answer = quick_answer("量子计算机的原理是什么？", [Document(WEATHER)])
    assert answer == QuickAnswer(())
    assert quick_answer_markdown(answer) == ""


def test_markdown_quotes_each_sentence_with_a_citation_the_chat_page_can_link():
    answer = quick_answer("战国无双3由哪两个公司合作开发？", [Document(WEATHER), Document(GAME)])
    markdown = quick_answer_markdown(answer)
    assert "> 本作由光荣和ω-force合作开发，并由任天堂发行！ [2]" in markdown.split("\n\n")
    assert "[\\[2\\]](#src-2)" in link_citations(markdown, {2: "#src-2"})


def test_highlights_mark_exactly_the_quoted_sentences_of_a_source():
    docs = [Document(WEATHER), Document(GAME)]
    answer = quick_answer("战国无双3由哪两个公司合作开发？", docs)
    pieces = highlights(GAME, answer.quotes, source=2)
    assert "".join(text for text, _ in pieces) == GAME
    marked = [text for text, marked in pieces if marked]
    assert "本作由光荣和ω-force合作开发，并由任天堂发行！" in marked
    assert highlights(WEATHER, answer.quotes, source=1) == [(WEATHER, False)]


def _marked(pieces: list[tuple[str, bool]]) -> list[str]:
    return [piece for piece, marked in pieces if marked]


def test_question_words_are_never_marked_inside_links_urls_or_inline_code():
    text = "From the [HuggingFace Hub](https://huggingface.co/docs/hub); see https://hub.example/x or `hub_login`."
    pieces = snippet(text, ["huggingface", "hub"])
    assert "".join(p for p, _ in pieces) == text  # nothing is lost
    assert _marked(pieces) == ["HuggingFace", "Hub"]  # the link's words, not its target, the URL or the code


def test_identifiers_are_marked_whole_and_never_from_their_middle():
    pieces = snippet("Call api_client.get() or my_api, then API2 and apis", ["api"])
    assert _marked(pieces) == ["api_client", "API2", "apis"]


def test_chinese_words_are_marked_inside_chinese_text():
    pieces = snippet("我们用api_client调用部署好的服务", ["api", "部署"])
    assert "部署" in "".join(_marked(pieces)) and "api_client" in "".join(_marked(pieces))


def test_a_chunk_that_starts_with_the_end_of_a_code_block_is_read_as_prose_after_it():
    # Overlapping chunks are cut anywhere, also just before a code block's closing fence.
    chunk = (
        "```\n\nLMDeploy 4bit 量化和推理支持的显卡包括：\n\n- 图灵架构（sm75）：20系列、T4\n- 安培架构（sm80）：A100\n"
    )
    answer = quick_answer("LMDeploy 4bit 量化支持哪些显卡？", [Document(chunk)])
    assert [(q.text, q.code) for q in answer.quotes] == [
        ("LMDeploy 4bit 量化和推理支持的显卡包括：图灵架构（sm75）：20系列、T4；安培架构（sm80）：A100", False)
    ]
    opening = "```shell\nlmdeploy lite auto_awq ./model\n"  # cut before its end: still code
    assert [s.code for s in split_sentences(opening)] == [True]
