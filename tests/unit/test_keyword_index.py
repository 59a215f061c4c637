"""The keyword index: one per knowledge base, and rebuilt when the way terms are cut changes."""

import sqlite3

from core.knowledge.records import KnowledgeBase, Records
from core.knowledge.terms import match_query, terms

# The schema of databases made before per-knowledge-base indexes: one shared FTS5 table.
OLD_SCHEMA = """
CREATE TABLE kb (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, embedding TEXT NOT NULL,
    splitter TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE source (id TEXT PRIMARY KEY, kb_id TEXT NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
    kind TEXT NOT NULL, location TEXT NOT NULL, ref TEXT, commit_sha TEXT, added REAL NOT NULL,
    updated REAL, excluded TEXT NOT NULL DEFAULT '[]', UNIQUE (kb_id, kind, location));
CREATE TABLE chunk (id TEXT PRIMARY KEY, kb_id TEXT NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES source(id) ON DELETE CASCADE, path TEXT NOT NULL,
    seq INTEGER NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    heading TEXT NOT NULL DEFAULT '', text TEXT NOT NULL, terms TEXT NOT NULL DEFAULT '');
CREATE VIRTUAL TABLE chunk_fts USING fts5(terms, content='chunk', content_rowid='rowid');
CREATE TRIGGER chunk_fts_insert AFTER INSERT ON chunk BEGIN
    INSERT INTO chunk_fts(rowid, terms) VALUES (new.rowid, new.terms);
END;
"""


def _search(records, kb_id, question):
    return [cid for cid, _ in records.keyword_search([kb_id], match_query(terms(question)), 5)]


def test_an_older_database_is_re_cut_and_gets_its_own_index_on_opening(tmp_path):
    path = tmp_path / "knowledge.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO kb VALUES ('kb-a', 'docs', 'm', '{}', 0, 0)")
    db.execute("INSERT INTO source VALUES ('s', 'kb-a', 'folder', '/x', NULL, NULL, 0, NULL, '[]')")
    # Cut by the earlier terms(), which glued the Latin word to the Chinese after it.
    db.execute(
        "INSERT INTO chunk VALUES ('c1', 'kb-a', 's', 'q.md', 0, 1, 1, '', ?, ?)",
        ("lmdeploy支持AWQ量化", "lmdeploy支持awq量化"),
    )
    db.commit()
    db.close()
    assert _search(Records(path), "kb-a", "lmdeploy 支持哪些量化？") == ["c1"]
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "chunk_fts" not in names and "chunk_fts_insert" not in names


def test_a_deleted_knowledge_base_takes_its_index_with_it(tmp_path):
    records = Records(tmp_path / "knowledge.sqlite3")
    records.insert_kb(KnowledgeBase("kb-a", "docs", "m", {}, 0.0, 0.0))
    records.delete_kb("kb-a")
    names = {r[0] for r in sqlite3.connect(tmp_path / "knowledge.sqlite3").execute("SELECT name FROM sqlite_master")}
    assert not any(name.startswith("kb_fts_") for name in names)
    records.insert_kb(KnowledgeBase("kb-b", "docs", "m", {}, 0.0, 0.0))  # the same row number again
    assert _search(records, "kb-b", "anything") == []
