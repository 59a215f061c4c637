"""Knowledge-base records in SQLite: bases, their sources, file manifests and chunk texts.

Chroma holds the vectors; this database holds everything needed to decide what to embed
again (a content hash per file), to list and preview chunks, and to check that the two
agree. WAL mode lets pages read while an ingestion job writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.credentials import without_credentials
from core.errors import RecordsDamaged
from core.knowledge.terms import TERMS_VERSION, chunk_terms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kb (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    embedding TEXT NOT NULL,
    splitter TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS source (
    id TEXT PRIMARY KEY,
    kb_id TEXT NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    location TEXT NOT NULL,
    ref TEXT,
    commit_sha TEXT,
    added REAL NOT NULL,
    updated REAL,
    excluded TEXT NOT NULL DEFAULT '[]',
    UNIQUE (kb_id, kind, location)
);
CREATE TABLE IF NOT EXISTS file (
    source_id TEXT NOT NULL REFERENCES source(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL,
    updated REAL NOT NULL,
    splitter_version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source_id, path)
);
CREATE TABLE IF NOT EXISTS chunk (
    id TEXT PRIMARY KEY,
    kb_id TEXT NOT NULL REFERENCES kb(id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES source(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    heading TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    terms TEXT NOT NULL DEFAULT '',
    start_col INTEGER,
    end_col INTEGER,
    page INTEGER
);
CREATE INDEX IF NOT EXISTS chunk_by_file ON chunk (source_id, path, seq);
CREATE INDEX IF NOT EXISTS chunk_by_kb ON chunk (kb_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Columns added since the first release, as (table, column, declaration): databases made
# before them get them on opening, so they stay readable.
_ADDED_COLUMNS = [
    ("file", "splitter_version", "INTEGER NOT NULL DEFAULT 0"),
    ("chunk", "start_col", "INTEGER"),
    ("chunk", "end_col", "INTEGER"),
    # Logins (core.access): who owns a knowledge base and how it is shared. Bases made before
    # logins existed belong to nobody and stay shared editable, so turning logins on hides
    # or locks nothing anyone had; an administrator can give them an owner later.
    ("kb", "owner", "TEXT"),
    ("kb", "sharing", "TEXT NOT NULL DEFAULT 'edit'"),
    # The page a chunk starts on, for PDFs and images; NULL for other files and older chunks.
    ("chunk", "page", "INTEGER"),
]


@dataclasses.dataclass(frozen=True)
class KnowledgeBase:
    """One knowledge base: its display name, embedding model and splitter settings."""

    id: str
    name: str
    embedding: str
    splitter: dict[str, Any]
    created: float
    updated: float
    owner: str | None = None  # the user who made it; None: nobody (made with logins off)
    sharing: str = "edit"  # private | read (shared read-only) | edit (shared editable)

    @property
    def collection(self) -> str:
        """Name of its Chroma collection (independent of the display name)."""
        return self.id


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a knowledge base's files come from: a folder, a git repository or uploads."""

    id: str
    kb_id: str
    kind: str
    location: str
    ref: str | None
    commit_sha: str | None
    added: float
    updated: float | None
    excluded: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """What was ingested from one file, to tell later whether it changed.

    ``splitter_version`` is the version of the splitting code that cut it (0: cut before versions were recorded).
    """

    source_id: str
    path: str
    sha256: str
    size: int
    n_chunks: int
    splitter_version: int = 0


@dataclasses.dataclass(frozen=True)
class ChunkRecord:
    """One stored chunk with where it came from.

    ``start_col`` and ``end_col`` are set only where another chunk of the file spans the same
    lines, so that a citation tells the two apart. ``page`` is the 1-based page it starts on, for
    files that have pages (PDFs, images).
    """

    id: str
    kb_id: str
    source_id: str
    path: str
    seq: int
    start_line: int
    end_line: int
    heading: str
    text: str
    terms: str = ""
    start_col: int | None = None
    end_col: int | None = None
    page: int | None = None


class Records:
    """Access to the knowledge database; each call opens a short-lived connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.recovered: RecordsDamaged | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            # A damaged file would stop every page; keep it for inspection and start afresh.
            backup = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                damaged = Path(f"{path}{suffix}")
                if damaged.exists():
                    os.replace(damaged, Path(f"{backup}{suffix}"))
            self.recovered = RecordsDamaged(path=str(path), backup=str(backup), detail=str(exc))
            self._open()

    def _open(self) -> None:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
            _migrate_keyword_index(db)
            _forget_url_credentials(db)
            problem = db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(problem)
        finally:
            db.close()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction: committed on success, rolled back on error."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # knowledge bases
    def insert_kb(self, kb: KnowledgeBase) -> None:
        """Add a knowledge-base row."""
        with self.connect() as db:
            db.execute(
                "INSERT INTO kb (id, name, embedding, splitter, created, updated, owner, sharing) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (kb.id, kb.name, kb.embedding, json.dumps(kb.splitter), kb.created, kb.updated, kb.owner, kb.sharing),
            )
            _create_keyword_index(db, kb.id)

    def kbs(self) -> list[KnowledgeBase]:
        """Every knowledge base, by name."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM kb ORDER BY name").fetchall()
        return [_kb(r) for r in rows]

    def kb_by_name(self, name: str) -> KnowledgeBase | None:
        """The knowledge base called ``name``."""
        with self.connect() as db:
            row = db.execute("SELECT * FROM kb WHERE name = ?", (name,)).fetchone()
        return _kb(row) if row else None

    def kb_by_id(self, kb_id: str) -> KnowledgeBase | None:
        """The knowledge base with id ``kb_id``."""
        with self.connect() as db:
            row = db.execute("SELECT * FROM kb WHERE id = ?", (kb_id,)).fetchone()
        return _kb(row) if row else None

    def rename_kb(self, kb_id: str, name: str) -> None:
        """Change a knowledge base's display name."""
        with self.connect() as db:
            db.execute("UPDATE kb SET name = ?, updated = ? WHERE id = ?", (name, time.time(), kb_id))

    def set_kb_access(self, kb_id: str, owner: str | None, sharing: str) -> None:
        """Record who owns a knowledge base and how it is shared."""
        with self.connect() as db:
            db.execute(
                "UPDATE kb SET owner = ?, sharing = ?, updated = ? WHERE id = ?", (owner, sharing, time.time(), kb_id)
            )

    def delete_kb(self, kb_id: str) -> None:
        """Remove a knowledge base with its sources, files and chunks."""
        with self.connect() as db:
            _drop_keyword_index(db, kb_id)
            db.execute("DELETE FROM kb WHERE id = ?", (kb_id,))

    def kb_stats(self, kb_id: str) -> dict[str, int]:
        """Counts of sources, files and chunks of a knowledge base, and the bytes of its texts."""
        with self.connect() as db:
            sources = db.execute("SELECT COUNT(*) FROM source WHERE kb_id = ?", (kb_id,)).fetchone()[0]
            files = db.execute(
                "SELECT COUNT(*) FROM file JOIN source ON file.source_id = source.id WHERE source.kb_id = ?", (kb_id,)
            ).fetchone()[0]
            chunks, text_bytes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(text AS BLOB))), 0) FROM chunk WHERE kb_id = ?", (kb_id,)
            ).fetchone()
        return {"sources": sources, "files": files, "chunks": chunks, "text_bytes": text_bytes}

    # sources
    def upsert_source(self, source: Source) -> Source:
        """Add a source, or return the existing one with the same kind and location (its ref updated)."""
        with self.connect() as db:
            db.execute(
                "INSERT INTO source VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (kb_id, kind, location) DO UPDATE SET ref = excluded.ref",
                (*dataclasses.astuple(source)[:-1], json.dumps(list(source.excluded))),
            )
            row = db.execute(
                "SELECT * FROM source WHERE kb_id = ? AND kind = ? AND location = ?",
                (source.kb_id, source.kind, source.location),
            ).fetchone()
        return _source(row)

    def sources(self, kb_id: str) -> list[Source]:
        """A knowledge base's sources, oldest first."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM source WHERE kb_id = ? ORDER BY added", (kb_id,)).fetchall()
        return [_source(r) for r in rows]

    def source(self, source_id: str) -> Source | None:
        """The source with id ``source_id``."""
        with self.connect() as db:
            row = db.execute("SELECT * FROM source WHERE id = ?", (source_id,)).fetchone()
        return _source(row) if row else None

    def exclude(self, source_id: str, path: str) -> None:
        """Leave ``path`` out of the source from now on (its chunks are removed separately)."""
        with self.connect() as db:
            row = db.execute("SELECT excluded FROM source WHERE id = ?", (source_id,)).fetchone()
            excluded = sorted({*json.loads(row[0]), path})
            db.execute("UPDATE source SET excluded = ? WHERE id = ?", (json.dumps(excluded), source_id))

    def delete_source(self, source_id: str) -> None:
        """Forget a source with its files and chunks."""
        with self.connect() as db:
            db.execute("DELETE FROM source WHERE id = ?", (source_id,))

    def chunk_ids_of_kb(self, kb_id: str) -> list[str]:
        """Ids of every stored chunk of a knowledge base."""
        with self.connect() as db:
            return [r[0] for r in db.execute("SELECT id FROM chunk WHERE kb_id = ?", (kb_id,))]

    def forget_files(self, kb_id: str) -> None:
        """Forget which files a knowledge base has ingested (and their chunks), keeping its
        sources, so the next ingestion reads and embeds everything again.
        """
        with self.connect() as db:
            db.execute("DELETE FROM chunk WHERE kb_id = ?", (kb_id,))
            db.execute("DELETE FROM file WHERE source_id IN (SELECT id FROM source WHERE kb_id = ?)", (kb_id,))

    def chunk_ids_of_source(self, source_id: str) -> list[str]:
        """Ids of every stored chunk of a source."""
        with self.connect() as db:
            return [r[0] for r in db.execute("SELECT id FROM chunk WHERE source_id = ?", (source_id,))]

    def mark_source_updated(self, source_id: str, commit_sha: str | None = None) -> None:
        """Record that a source was ingested now (at ``commit_sha`` for git sources)."""
        with self.connect() as db:
            db.execute(
                "UPDATE source SET updated = ?, commit_sha = COALESCE(?, commit_sha) WHERE id = ?",
                (time.time(), commit_sha, source_id),
            )

    # files and chunks
    def files(self, source_id: str) -> dict[str, FileRecord]:
        """Manifest of a source's ingested files, by path."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM file WHERE source_id = ?", (source_id,)).fetchall()
        return {
            r["path"]: FileRecord(
                r["source_id"], r["path"], r["sha256"], r["size"], r["n_chunks"], r["splitter_version"]
            )
            for r in rows
        }

    def chunk_ids(self, source_id: str, paths: list[str]) -> dict[str, list[str]]:
        """Ids of the stored chunks of ``paths``, by path."""
        found: dict[str, list[str]] = {p: [] for p in paths}
        with self.connect() as db:
            for path in paths:
                rows = db.execute("SELECT id FROM chunk WHERE source_id = ? AND path = ?", (source_id, path))
                found[path] = [r[0] for r in rows]
        return found

    def replace_files(self, kb_id: str, source_id: str, files: list[tuple[FileRecord, list[ChunkRecord]]]) -> None:
        """In one transaction, make each file's stored chunks exactly the given ones."""
        now = time.time()
        with self.connect() as db:
            for record, chunks in files:
                db.execute("DELETE FROM chunk WHERE source_id = ? AND path = ?", (source_id, record.path))
                db.executemany(
                    f"INSERT INTO chunk ({_CHUNK_COLUMNS}) VALUES ({_CHUNK_MARKS})",  # noqa: S608
                    [dataclasses.astuple(c) for c in chunks],
                )
                db.execute(
                    "INSERT OR REPLACE INTO file (source_id, path, sha256, size, n_chunks, updated, splitter_version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (source_id, record.path, record.sha256, record.size, record.n_chunks, now, record.splitter_version),
                )
            db.execute("UPDATE kb SET updated = ? WHERE id = ?", (now, kb_id))

    def remove_files(self, source_id: str, paths: list[str]) -> None:
        """Forget files and their chunks."""
        with self.connect() as db:
            for path in paths:
                db.execute("DELETE FROM chunk WHERE source_id = ? AND path = ?", (source_id, path))
                db.execute("DELETE FROM file WHERE source_id = ? AND path = ?", (source_id, path))

    def chunks(self, kb_id: str, path: str | None = None, limit: int | None = None) -> list[ChunkRecord]:
        """Chunks of a knowledge base in file order, optionally of one file."""
        query = "SELECT * FROM chunk WHERE kb_id = ?"
        params: list[Any] = [kb_id]
        if path is not None:
            query += " AND path = ?"
            params.append(path)
        query += " ORDER BY source_id, path, seq"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self.connect() as db:
            rows = db.execute(query, params).fetchall()
        return [ChunkRecord(**dict(r)) for r in rows]

    def keyword_search(self, kb_ids: list[str], query: str, limit: int) -> list[tuple[str, float]]:
        """Chunk ids of ``kb_ids`` matching the FTS5 ``query``, best BM25 first, with their scores
        (FTS5's bm25(): lower is better). Each knowledge base's scores come from its own index.
        """
        if not query:
            return []
        found: list[tuple[str, float]] = []
        with self.connect() as db:
            for kb_id in kb_ids:
                table = _keyword_table(db, kb_id)
                if table is None:
                    continue
                sql = f"""
                    SELECT chunk.id, bm25({table}) AS score FROM {table} JOIN chunk ON chunk.rowid = {table}.rowid
                    WHERE {table} MATCH ? ORDER BY score LIMIT ?"""  # noqa: S608
                found += [(r[0], r[1]) for r in db.execute(sql, [query, limit])]
        return sorted(found, key=lambda r: r[1])[:limit]

    def kb_of_chunks(self, ids: list[str]) -> dict[str, str]:
        """The knowledge base id of each chunk id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self.connect() as db:
            rows = db.execute(f"SELECT id, kb_id FROM chunk WHERE id IN ({marks})", ids)  # noqa: S608
            return {r[0]: r[1] for r in rows}

    def chunks_by_id(self, ids: list[str]) -> dict[str, ChunkRecord]:
        """Chunks with the given ids."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self.connect() as db:
            rows = db.execute(f"SELECT * FROM chunk WHERE id IN ({marks})", ids).fetchall()  # noqa: S608
        return {r["id"]: ChunkRecord(**dict(r)) for r in rows}


_CHUNK_COLUMNS = ", ".join(f.name for f in dataclasses.fields(ChunkRecord))
_CHUNK_MARKS = ", ".join("?" * len(dataclasses.fields(ChunkRecord)))


# The keyword (BM25) index: one FTS5 table per knowledge base, so that a knowledge base's
# BM25 statistics (document count, lengths, term rarity) are its own and its ranking does not
# change when other knowledge bases are added. Triggers keep each in step with the chunk table,
# so ingestion updates it in the same transaction and no question ever rebuilds it.
_KEYWORD_INDEX = "keyword_index"


def _keyword_table(db: sqlite3.Connection, kb_id: str) -> str | None:
    """The name of ``kb_id``'s FTS5 table, from the knowledge base's row number."""
    row = _kb_row(db, kb_id)
    return None if row is None else f"kb_fts_{row}"


def _kb_row(db: sqlite3.Connection, kb_id: str) -> int | None:
    row = db.execute("SELECT rowid FROM kb WHERE id = ?", (kb_id,)).fetchone()
    return None if row is None else int(row[0])


def _create_keyword_index(db: sqlite3.Connection, kb_id: str) -> None:
    # Only the row number goes into the statements (triggers take no placeholders), never user text.
    row = _kb_row(db, kb_id)
    table, owner = f"kb_fts_{row}", f"(SELECT id FROM kb WHERE rowid = {row})"  # noqa: S608
    db.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(terms, content='chunk', content_rowid='rowid')")
    db.execute(
        f"CREATE TRIGGER {table}_insert AFTER INSERT ON chunk WHEN new.kb_id = {owner} BEGIN "  # noqa: S608
        f"INSERT INTO {table}(rowid, terms) VALUES (new.rowid, new.terms); END"
    )
    db.execute(
        f"CREATE TRIGGER {table}_delete AFTER DELETE ON chunk WHEN old.kb_id = {owner} BEGIN "  # noqa: S608
        f"INSERT INTO {table}({table}, rowid, terms) VALUES ('delete', old.rowid, old.terms); END"
    )
    db.execute(f"INSERT INTO {table}(rowid, terms) SELECT rowid, terms FROM chunk WHERE kb_id = ?", (kb_id,))  # noqa: S608


def _drop_keyword_index(db: sqlite3.Connection, kb_id: str) -> None:
    table = _keyword_table(db, kb_id)
    if table is not None:
        db.execute(f"DROP TRIGGER IF EXISTS {table}_insert")
        db.execute(f"DROP TRIGGER IF EXISTS {table}_delete")
        db.execute(f"DROP TABLE IF EXISTS {table}")


def _migrate_keyword_index(db: sqlite3.Connection) -> None:
    """Re-cut every chunk's terms and rebuild the per-knowledge-base indexes when the way terms
    are cut has changed (or the database still has the one shared index of earlier versions).
    """
    db.execute("BEGIN IMMEDIATE")  # another process opening the same folder waits, then finds it done
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_KEYWORD_INDEX,)).fetchone()
    if row and int(row[0]) == TERMS_VERSION:
        db.execute("COMMIT")
        return
    for name in ("chunk_fts_insert", "chunk_fts_delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    db.execute("DROP TABLE IF EXISTS chunk_fts")
    kb_ids = [r[0] for r in db.execute("SELECT id FROM kb")]
    for kb_id in kb_ids:
        _drop_keyword_index(db, kb_id)
    rows = db.execute("SELECT rowid, heading, text FROM chunk").fetchall()
    db.executemany("UPDATE chunk SET terms = ? WHERE rowid = ?", [(chunk_terms(h, t), r) for r, h, t in rows])
    for kb_id in kb_ids:
        _create_keyword_index(db, kb_id)
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_KEYWORD_INDEX, str(TERMS_VERSION)))
    db.execute("COMMIT")


def _forget_url_credentials(db: sqlite3.Connection) -> None:
    """Take the user name and token out of git addresses that earlier versions recorded as typed,
    leaving no copy of them in the file.
    """
    rows = db.execute("SELECT id, location FROM source WHERE kind = 'git'").fetchall()
    cleaned = {source_id: clean for source_id, old in rows if (clean := without_credentials(old)) != old}
    if not cleaned:
        return
    db.execute("PRAGMA secure_delete=ON")  # the replaced text is overwritten, not just unlinked
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("BEGIN IMMEDIATE")
    for source_id, location in cleaned.items():
        try:
            db.execute("UPDATE source SET location = ? WHERE id = ?", (location, source_id))
        except sqlite3.IntegrityError:
            # The same repository is recorded without credentials too: that source already covers it.
            db.execute("DELETE FROM source WHERE id = ?", (source_id,))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the log held the old pages as well


def _add_missing_columns(db: sqlite3.Connection) -> None:
    # Names come from _ADDED_COLUMNS only; SQLite takes no placeholders for them.
    for table, column, declaration in _ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column in present:
            continue
        try:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.OperationalError as exc:
            # Another process opening the same database may have added it a moment ago: that
            # is no damage, and must not set the database aside as damaged.
            if "duplicate column" not in str(exc):
                raise


def _source(row: sqlite3.Row) -> Source:
    data = dict(row)
    data["excluded"] = tuple(json.loads(data["excluded"]))
    return Source(**data)


def _kb(row: sqlite3.Row) -> KnowledgeBase:
    data = dict(row)
    data["splitter"] = json.loads(data["splitter"])
    return KnowledgeBase(**data)
