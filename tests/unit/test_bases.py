import pytest

from core.errors import InvalidName, KnowledgeBaseExists, KnowledgeBaseNotFound
from core.knowledge.bases import check_name
from core.knowledge.splitting import SplitterSettings

EMBEDDING = "multilingual-e5-small-q4"


@pytest.mark.parametrize("name", ["课程笔记", "docs v2", "📚 library", "a" * 64])
def test_names_users_write_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "   ", "a/b", "..", "back\\slash", "x" * 300, "tab\tname", "nul\x00"])
def test_bad_names_are_refused_with_a_reason(name):
    with pytest.raises(InvalidName) as caught:
        check_name(name)
    assert "cannot be used" in str(caught.value)
    assert "不能作为知识库名称" in caught.value.message("zh")


def test_create_list_rename_delete(bases):
    kb = bases.create("课程笔记", EMBEDDING, SplitterSettings())
    assert [k.name for k in bases.all()] == ["课程笔记"]
    assert kb.collection.startswith("kb-")
    with pytest.raises(KnowledgeBaseExists):
        bases.create("课程笔记", EMBEDDING, SplitterSettings())

    renamed = bases.rename(kb, "lecture notes")
    assert renamed.id == kb.id and bases.get("lecture notes").id == kb.id
    with pytest.raises(KnowledgeBaseNotFound):
        bases.get("课程笔记")

    bases.delete(renamed)
    assert bases.all() == []


def test_a_base_records_its_embedding_and_splitter(bases):
    kb = bases.create("docs", "all-minilm-l6-v2", SplitterSettings(300, 60))
    again = bases.get("docs")
    assert again.embedding == "all-minilm-l6-v2"
    assert bases.splitter(again) == SplitterSettings(300, 60)
    assert kb.splitter == {"chunk_size": 300, "chunk_overlap": 60, "unit": "chars"}
