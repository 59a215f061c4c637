from tests.app.conftest import wait_for_jobs


def _with_kb(app, folder):
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input("docs").run()
    app.button(key="kb.create").click().run()
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    return app.switch_page("pages/evaluate.py").run()


def test_upload_review_keep_run_and_compare(app, docs_folder):
    _with_kb(app, docs_folder)
    assert not app.exception
    csv = "question,source,answer\nLMDeploy 支持哪些量化？,quant.md,AWQ\nHow long to boil pasta?,pasta.md,ten minutes\n"
    app.get("file_uploader")[0].upload("questions.csv", csv.encode(), "text/csv").run()
    assert "2 questions read from questions.csv." in [c.value for c in app.caption]
    app.text_input(key="eval.set_name").input("smoke").run()
    app.button(key="eval.save_set").click().run()
    assert app.selectbox(key="eval.set").value == "smoke"

    app.button(key="eval.run").click().run()
    wait_for_jobs()
    app.run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["recall@4"] == "1.00" and metrics["MRR"] == "1.00"
    per_question = app.dataframe[0].value
    assert list(per_question["found"]) == [True, True]

    app.slider(key="eval.top_k").set_value(1).run()
    app.selectbox(key="eval.mode").select("dense").run()
    app.button(key="eval.run").click().run()
    wait_for_jobs()
    app.run()
    compared = app.dataframe[-1].value
    assert len(compared.columns) == 2 and "recall@1" in compared.index and "recall@4" in compared.index


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
