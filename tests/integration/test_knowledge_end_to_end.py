from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import AnswerSettings, prepare_answer
from core.rag.retrieval import KnowledgeRetriever, Searcher, SearchSettings


def _folder(root):
    root.mkdir()
    (root / "lmdeploy.md").write_text(
        "# LMDeploy 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化，也支持 KV cache int8 量化，可以显著降低显存占用。\n",
        encoding="utf-8",
    )
    (root / "xtuner.md").write_text(
        "# XTuner 微调\n\nXTuner 可以用 QLoRA 在单张 8GB 显卡上微调 7B 模型。\n", encoding="utf-8"
    )
    (root / "cooking.txt").write_text("Boil the pasta for ten minutes, then add tomato sauce and basil.\n")
    (root / "tool.py").write_text("def area(radius):\n    return 3.14159 * radius ** 2\n")
    return root


def test_ingested_folder_answers_with_the_right_file(real_services, smollm, tmp_path):
    bases = real_services.knowledge
    kb = bases.create("集成测试", "multilingual-e5-small-q4", SplitterSettings())
    folder = _folder(tmp_path / "docs")
    job = real_services.start_ingest(kb, FolderInput(folder))
    done = real_services.jobs.wait(job.id, timeout=300)
    assert done.status == "done", done.error
    assert done.result["files_ingested"] == 4
    stats = bases.stats(kb)
    assert stats.chunks == stats.vectors == 4

    retriever = KnowledgeRetriever(bases=bases, kb_names=[kb.name], k=2)
    assert retriever.invoke("lmdeploy 支持哪些量化方式？")[0].metadata["path"] == "lmdeploy.md"
    assert retriever.invoke("How long should pasta boil?")[0].metadata["path"] == "cooking.txt"

    llm = real_services.models.chat_model(max_new_tokens=32, temperature=0)
    answer = prepare_answer(
        "How long should pasta boil?", [], llm, Searcher(bases), [kb], SearchSettings(k=2), AnswerSettings(lang="en")
    )
    assert answer.hits[0].chunk.path == "cooking.txt"
    assert len([piece for piece in answer.stream(llm) if piece]) > 1

    again = real_services.jobs.wait(real_services.start_ingest(kb, FolderInput(folder)).id, timeout=300)
    assert again.result["chunks_added"] == 0 and again.result["files_unchanged"] == 4
