"""The command line and the Knowledge page over one data folder: what a user's folder goes through."""

from __future__ import annotations

from pathlib import Path

from core import ingest
from ui.common import services


def _notes(root: Path) -> dict[str, bytes]:
    (root / "sub").mkdir(parents=True)
    (root / "todo.md").write_text("# 待办\n\n给 LMDeploy 的量化写笔记。\n", encoding="utf-8")
    (root / "sub" / "awq.md").write_text("# AWQ\n\nWeights in 4 bits, activations in 16.\n")
    return _files(root)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_deleting_a_base_made_from_my_folder_keeps_the_folder(app, app_env):
    notes = app_env / "my-notes"
    before = _notes(notes)
    assert ingest.main(["add", "notes", "--create", "--folder", str(notes)]) == 0

    page = app.switch_page("pages/knowledge.py").run()
    assert page.selectbox(key="kb.pick").value == "notes"
    assert any("Folders you added from this machine are never touched" in m.value for m in page.markdown)
    page.button(key="kb.delete_yes").click().run()

    assert page.info[0].value == "No knowledge base yet: create one below."
    assert _files(notes) == before


def test_a_failed_add_create_leaves_no_empty_base(app_env, capsys):
    assert ingest.main(["add", "notes", "--create", "--folder", str(app_env / "missing")]) == 2
    assert "was not kept" in capsys.readouterr().err

    assert ingest.main(["add", "repo", "--create", "--git", "http://127.0.0.1:9/nothing.git"]) == 1
    assert "was not kept" in capsys.readouterr().err

    assert ingest.main(["list"]) == 0
    assert capsys.readouterr().out == ""
    assert services().knowledge.all() == []


def test_a_failed_add_to_an_existing_base_keeps_it(app_env, capsys):
    notes = app_env / "my-notes"
    _notes(notes)
    assert ingest.main(["add", "notes", "--create", "--folder", str(notes)]) == 0
    assert ingest.main(["add", "notes", "--git", "http://127.0.0.1:9/nothing.git"]) == 1
    assert "not kept" not in capsys.readouterr().err
    assert ingest.main(["list"]) == 0
    assert capsys.readouterr().out.startswith("notes: 2 files")
