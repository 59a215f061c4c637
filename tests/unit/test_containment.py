"""Every write lands inside its own folder: one helper (core.app_files.inside) places archive
entries, uploads, source copies and clones, question sets, downloads and export names, and
hostile names cannot lead it out."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.app_files import MAX_NAME_BYTES, inside, safe_name
from core.conversations import Conversation, export_name
from core.errors import OutsideFolder
from core.evaluation import EvaluationStore, Question
from core.knowledge import sources
from core.knowledge.archives import extract_zip, save_upload
from core.knowledge.records import Source
from core.knowledge.sources import GitInput, UploadInput
from core.knowledge.splitting import SplitterSettings
from core.models import download
from core.models.spec import ModelSpec
from tests.fakes import FakeHub
from tests.git_server import GitServer, Upstream

HOSTILE = [
    "..",
    "...",
    "....",
    ".",
    "",
    "/",
    "/etc/passwd",
    "C:\\x",
    "C:",
    "a\x00b",
    "\x00",
    "..\\..\\x",
    "../../x",
    "x/../../..",
    "x" * 300,
    "长" * 120,  # 360 bytes of UTF-8
    "长" * 200 + ".md",
    "\u2024\u2024",  # one dot leader, twice: ".." once compatibility-normalised
    "\u2025",  # two dot leader
    "\uff0e\uff0e",  # fullwidth full stops
    "\uff0e" * 200 + "a",
    "\u2215etc\u2215passwd",  # division slash
    "..\u2215..\u2215x",
    "\uff0f\uff3c",  # fullwidth solidus and reverse solidus
    "   ",
    ". . .",
    ".\u3000.",
    "\u3000",
    " .. ",
    "\u202egnp.exe",  # right-to-left override
    "a\u2028b",
    "CON",
    "nul.txt",
    "~",
    "\ud800",  # a lone surrogate, as os.fsdecode makes of undecodable bytes
]


def _is_usable(name: str) -> bool:
    return (
        bool(name)
        and name not in {".", ".."}
        and "/" not in name
        and "\x00" not in name
        and len(name.encode("utf-8")) <= MAX_NAME_BYTES
    )


def _strictly_inside(path: Path, folder: Path) -> bool:
    real, real_folder = path.resolve(), folder.resolve()
    return real != real_folder and real.is_relative_to(real_folder)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside_the_folder(tmp_path, name):
    path = inside(tmp_path, name)
    assert _strictly_inside(path, tmp_path) and path.parent == tmp_path
    assert _is_usable(path.name) and safe_name(path.name) == path.name
    path.write_bytes(b"x")  # the file system takes it
    assert path.read_bytes() == b"x"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(
        st.one_of(
            st.sampled_from(HOSTILE),
            st.text(max_size=400),
            st.text(alphabet=".\\/ \x00\u2024\uff0e\u2215\u3000:长", max_size=40),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_names_give_a_path_strictly_inside_the_folder(tmp_path, names):
    path = inside(tmp_path, *names)
    assert _strictly_inside(path, tmp_path)
    assert path.relative_to(tmp_path).parts == tuple(safe_name(n) for n in names)
    assert all(_is_usable(part) for part in path.relative_to(tmp_path).parts)


@given(st.text(max_size=600))
def test_safe_names_are_usable_and_stable(name):
    cleaned = safe_name(name)
    assert _is_usable(cleaned)
    assert safe_name(cleaned) == cleaned


def test_ordinary_names_are_kept():
    for name in ["notes.md", "课程 笔记.md", ".env", "v1.2-release_notes.txt", "README"]:
        assert safe_name(name) == name


def test_a_link_in_the_folder_is_not_followed_out(tmp_path):
    folder, elsewhere = tmp_path / "folder", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "docs").symlink_to(elsewhere, target_is_directory=True)
    (folder / "loop").symlink_to(folder / "loop")
    with pytest.raises(OutsideFolder) as caught:
        inside(folder, "docs", "x.md")
    assert "outside" in str(caught.value) and "之外" in caught.value.message("zh")
    with pytest.raises(OutsideFolder):
        inside(folder, "loop", "x.md")
    # The last part is never followed: whoever writes replaces the link, whoever deletes refuses it.
    assert inside(folder, "docs") == folder / "docs"


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _everything(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix != ".sqlite3"}


def test_zip_members_stay_in_the_target(tmp_path, files):
    dest = tmp_path / "out"
    long_name = "长" * 120 + ".md"  # 363 bytes: the file system would refuse it as it is
    archive = _zip({"../../x": b"up", "/abs": b"abs", "a/\u2024\u2024/b.md": b"b", long_name: b"long", "ok.md": b"ok"})
    skipped = extract_zip(archive, dest, files=files)
    assert sorted(e.name for e in skipped) == ["../../x", "/abs"]
    assert _everything(tmp_path) == {"out/ok.md", "out/a/upload/b.md", f"out/{safe_name(long_name)}"}


def test_uploads_named_dots_zip_unpack_inside_their_source(bases, tmp_path):
    kb = bases.create("uploads", "multilingual-e5-small-q4", SplitterSettings())
    archive = _zip({"a.md": b"# A\n"})
    ready = sources.prepare(bases, kb, UploadInput((("..zip", archive), ("...zip", archive), ("../../up.md", b"x"))))
    assert _everything(ready.root) == {"upload/a.md", "up.md"}
    assert sorted(p.name for p in bases.sources_dir.iterdir()) == [ready.source.id]


def test_a_tampered_source_id_keeps_its_copy_in_the_sources_folder(bases):
    kb = bases.create("odd", "multilingual-e5-small-q4", SplitterSettings())
    source = bases.records.upsert_source(Source("../../../escape", kb.id, "upload", "uploads", None, None, 0.0, None))
    assert bases.source_folder(source) == bases.sources_dir / "escape"


def test_upload_file_names_stay_in_the_folder(tmp_path, files):
    for name in HOSTILE:
        assert save_upload(name, b"x", tmp_path / "up").parent == tmp_path / "up"


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("../../etc/passwd", "..-..-etc-passwd.md"),
        ("TCP/IP 是什么", "TCP-IP 是什么.md"),
        ("C:\\x", "C_-x.md"),
        ("", "abc123.md"),
        ("\u2024\u2024", "\u2024\u2024.md"),
    ],
)
def test_export_names_are_one_safe_file_name(title, name):
    assert export_name(Conversation("abc123", title, 0.0, 0.0)) == name


def test_export_names_are_short_enough(tmp_path):
    name = export_name(Conversation("abc123", "长" * 300, 0.0, 0.0))
    assert name.endswith(".md") and len(name.encode()) <= MAX_NAME_BYTES
    (tmp_path / name).write_text("x")


def test_question_sets_stay_in_their_folder(tmp_path, files):
    store = EvaluationStore(tmp_path / "evaluations", files)
    store.save_set("../../escape", [Question("q?", "a.md")])
    assert store.sets() == {"../../escape": [Question("q?", "a.md")]}
    assert not (tmp_path / "escape.json").exists()


def test_downloaded_files_stay_in_the_model_folder(tmp_path, files):
    spec = ModelSpec(key="m", name="M", family="qwen2", source="hub", params_b=0.1, hf_id="org/m")
    folder = tmp_path / "models" / "m"
    hub = FakeHub({"../../config.json": b"{}", "model.safetensors": b"w"})
    download.download(spec, hub, "org/m", folder, app_files=files)
    assert (folder / "upload" / "upload" / "config.json").read_bytes() == b"{}"
    assert sorted(os.listdir(tmp_path)) == ["created.sqlite3", "models"]


def test_a_clone_lands_in_its_own_folder_whatever_its_address_says(bases, tmp_path):
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served") as server:
        project = Upstream(tmp_path, server)
        project.commit({"a.md": "# A\n"})
        kb = bases.create("repo", "multilingual-e5-small-q4", SplitterSettings())
        url = project.url.replace("/project.git", "/../../project.git")
        ready = sources.prepare(bases, kb, GitInput(url))
    assert ready.root == bases.sources_dir / ready.source.id and (ready.root / "a.md").is_file()
    assert [p.name for p in bases.sources_dir.iterdir()] == [ready.source.id]
    assert set(tmp_path.rglob("a.md")) == {project.work / "a.md", ready.root / "a.md"}
