import json

import core.evaluation
from core.rag.prompts import qa_system_prompt
from tests.app.conftest import shown, wait_for_jobs
from ui.common import services

QUESTIONS = (
    "question,source,answer\nLMDeploy 支持哪些量化？,quant.md,AWQ\nHow long to boil pasta?,pasta.md,ten minutes\n"
)


def _with_kb(app, folder):
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input("docs").run()
    app.button(key="kb.create").click().run()
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    return app.switch_page("pages/evaluate.py").run()


def _with_question_set(app, folder):
    _with_kb(app, folder)
    app.get("file_uploader")[0].upload("questions.csv", QUESTIONS.encode(), "text/csv").run()
    app.text_input(key="eval.set_name").input("smoke").run()
    app.button(key="eval.save_set").click().run()
    return app


def _evaluate(app):
    app.button(key="eval.run").click().run()
    wait_for_jobs()
    return app.run()


def _compared(app):
    """The comparison table: one row per run (the chart below it drawn without an error)."""
    assert not app.exception
    return app.dataframe[-1].value


def test_upload_review_keep_run_and_compare(app, docs_folder):
    _with_kb(app, docs_folder)
    assert not app.exception
    app.get("file_uploader")[0].upload("questions.csv", QUESTIONS.encode(), "text/csv").run()
    assert "2 questions read from questions.csv." in [c.value for c in app.caption]
    app.text_input(key="eval.set_name").input("smoke").run()
    app.button(key="eval.save_set").click().run()
    assert app.selectbox(key="eval.set").value == "smoke"

    _evaluate(app)
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["recall@4"] == "1.00" and metrics["MRR"] == "1.00"
    per_question = app.dataframe[0].value
    assert list(per_question["found"]) == [True, True] and list(per_question["rank"]) == ["1", "1"]

    app.slider(key="eval.top_k").set_value(1).run()
    app.selectbox(key="eval.mode").select("dense").run()
    _evaluate(app)
    compared = _compared(app)
    assert len(compared) == 2 and compared["run"].is_unique
    newer, older = compared["run"]
    assert newer.endswith("meaning (vectors) · k=1") and older.endswith("hybrid (recommended) · k=4")
    assert list(compared["k"]) == [1, 4] and list(compared["floor"]) == ["calibrated", "calibrated"]
    assert compared.loc[1, "recall_at_k"] == "1.00" and compared.loc[1, "mrr"] == "1.00"


def test_figures_not_measured_are_blank(app, docs_folder):
    _evaluate(_with_question_set(app, docs_folder))
    compared = _compared(app)
    # Without answers there are no citation, containment or answer-time figures.
    for column in ("citation_hit_rate", "answer_containment", "generate_ms_p50"):
        assert list(compared[column]) == [""]
    assert not compared.isna().any().any()
    assert compared.loc[0, "lang"] == "" and not compared.loc[0, "answers"]
    assert "None" not in [m.value for m in app.metric]


def test_two_runs_with_the_same_settings_are_told_apart(app, docs_folder):
    _evaluate(_evaluate(_with_question_set(app, docs_folder)))
    runs = services().evaluations.runs()
    labels = list(_compared(app)["run"])
    assert len(set(labels)) == 2
    assert all(f" · #{run.id[:4]}" in label for label, run in zip(labels, runs, strict=True))
    assert sorted(app.multiselect(key="eval.compare").options) == sorted(labels)


def test_answers_are_asked_for_in_the_ui_language(app, docs_folder, monkeypatch):
    # The app runs in English here; the Chinese prompt is what a run used to get whatever the UI's language.
    asked = []
    prepare = core.evaluation.prepare_answer

    def spy(*args, **kwargs):
        answer = prepare(*args, **kwargs)
        asked.append(answer.messages[0].content)
        return answer

    monkeypatch.setattr(core.evaluation, "prepare_answer", spy)
    _with_question_set(app, docs_folder)
    app.switch_page("pages/models.py").run()
    app.button(key="models.load").click().run()
    wait_for_jobs()
    app.switch_page("pages/evaluate.py").run()
    app.toggle(key="eval.answers").set_value(True).run()
    _evaluate(app)
    assert asked == [qa_system_prompt("en")] * 2
    assert list(_compared(app)["lang"]) == ["English"]


def test_a_run_is_deleted_after_confirmation(app, docs_folder):
    _evaluate(_evaluate(_with_question_set(app, docs_folder)))
    newer, older = services().evaluations.runs()
    app.selectbox(key="eval.delete_pick").select(newer.id).run()
    confirm = next(shown(m.value) for m in app.markdown if shown(m.value).startswith("Delete the run"))
    assert f"#{newer.id[:4]}" in confirm  # it names the run that goes
    app.button(key="eval.delete_yes").click().run()
    assert not app.exception
    assert [run.id for run in services().evaluations.runs()] == [older.id]
    assert len(_compared(app)) == 1 and "Result" not in [h.value for h in app.subheader]

    app.button(key="eval.delete_yes").click().run()
    assert services().evaluations.runs() == []
    assert "No run yet." in [c.value for c in app.caption]


def test_deleting_a_run_that_is_not_the_app_s_file_is_refused(app, docs_folder, tmp_path):
    _evaluate(_with_question_set(app, docs_folder))
    (run,) = services().evaluations.runs()
    kept = services().settings.data_dir / "evaluations" / "runs" / f"{run.id}.json"
    mine = tmp_path / "my-run.json"
    mine.write_text(kept.read_text(encoding="utf-8"), encoding="utf-8")
    kept.unlink()
    kept.symlink_to(mine)
    app.button(key="eval.delete_yes").click().run()
    assert len(app.error) == 1 and "refused to delete" in app.error[0].value
    assert json.loads(mine.read_text(encoding="utf-8"))["id"] == run.id


def test_a_bad_question_file_is_explained(app, docs_folder):
    _with_kb(app, docs_folder)
    app.get("file_uploader")[0].upload("questions.csv", b"a,b\n1,2\n", "text/csv").run()
    assert len(app.error) == 1 and "no row has a 'question'" in app.error[0].value


def test_draft_questions_with_the_loaded_model_for_review(app, docs_folder):
    _with_kb(app, docs_folder)
    app.switch_page("pages/models.py").run()
    app.button(key="models.load").click().run()
    wait_for_jobs()
    app.switch_page("pages/evaluate.py").run()
    app.number_input(key="eval.draft_count").set_value(2).run()
    app.button(key="eval.draft").click().run()
    wait_for_jobs()
    app.run()
    review = app.get("arrow_data_frame") or app.dataframe
    assert any("question" in getattr(frame, "value", {}).columns for frame in review)
