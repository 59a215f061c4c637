import io
import stat
import struct
import zipfile

import pytest

from core.app_files import LEDGER
from core.errors import ArchiveRefused
from core.knowledge.archives import SkippedEntry, extract_zip, save_upload
from tests.documents import zip_of


def _patch(data: bytes, name: str, flags: int | None = None, method: int | None = None, size: int | None = None):
    """The zip with ``name``'s local and central headers claiming other flag bits, method or uncompressed size."""
    buf = bytearray(data)
    # (signature, offsets of: flag bits, method, uncompressed size, name length, name)
    for sig, *at in ((b"PK\x03\x04", 6, 8, 22, 26, 30), (b"PK\x01\x02", 8, 10, 24, 28, 46)):
        pos = buf.find(sig)
        while pos != -1:
            length = struct.unpack_from("<H", buf, pos + at[3])[0]
            if buf[pos + at[4] : pos + at[4] + length] == name.encode():
                for value, offset, fmt in ((flags, at[0], "<H"), (method, at[1], "<H"), (size, at[2], "<I")):
                    if value is not None:
                        struct.pack_into(fmt, buf, pos + offset, value)
            pos = buf.find(sig, pos + 4)
    return bytes(buf)


def _tree(root):
    """Everything under ``root`` but the app's ledger of the folders it created."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.name != LEDGER)


def test_nested_files_extract(tmp_path, files):
    archive = tmp_path / "docs.zip"
    archive.write_bytes(
        zip_of(
            {
                "README.md": b"# Docs\n",
                "guide/": b"",
                "guide/install.md": b"pip install x\n",
                "课程/笔记.md": "笔记".encode(),
            }
        )
    )
    dest = tmp_path / "out"

    assert extract_zip(archive, dest, files=files) == []

    assert (dest / "guide" / "install.md").read_bytes() == b"pip install x\n"
    assert (dest / "课程" / "笔记.md").read_text(encoding="utf-8") == "笔记"
    assert _tree(dest) == ["README.md", "guide", "guide/install.md", "课程", "课程/笔记.md"]
    assert _tree(tmp_path) == ["docs.zip", "out", *(f"out/{p}" for p in _tree(dest))]  # no staging


def test_entries_pointing_outside_and_links_are_refused_and_listed(tmp_path, files):
    data = zip_of(
        {
            "ok.txt": b"fine",
            "../evil.txt": b"x",
            "/abs.txt": b"x",
            "C:\\x.txt": b"x",
            "a/../../evil2.txt": b"x",
            "sub\\..\\..\\evil3.txt": b"x",
        }
    )
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("link-to-etc")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc")
    dest = tmp_path / "sandbox" / "out"

    skipped = extract_zip(buf.getvalue(), dest, files=files)

    assert skipped == [
        SkippedEntry("../evil.txt", "outside_target"),
        SkippedEntry("/abs.txt", "outside_target"),
        SkippedEntry("C:\\x.txt", "outside_target"),
        SkippedEntry("a/../../evil2.txt", "outside_target"),
        SkippedEntry("sub\\..\\..\\evil3.txt", "outside_target"),
        SkippedEntry("link-to-etc", "link"),
    ]
    assert _tree(tmp_path) == ["sandbox", "sandbox/out", "sandbox/out/ok.txt"]


def test_a_link_already_in_the_target_does_not_carry_files_elsewhere(tmp_path, files):
    dest, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    dest.mkdir()
    elsewhere.mkdir()
    (dest / "docs").symlink_to(elsewhere)

    skipped = extract_zip(zip_of({"docs/x.txt": b"x", "y.txt": b"y"}), dest, files=files)

    assert skipped == [SkippedEntry("docs/x.txt", "outside_target")]
    assert list(elsewhere.iterdir()) == []
    assert (dest / "y.txt").read_bytes() == b"y"


def test_encrypted_and_unsupported_entries_are_listed(tmp_path, files):
    data = zip_of({"secret.txt": b"s", "deflate64.txt": b"d", "plain.txt": b"p"})
    data = _patch(_patch(data, "secret.txt", flags=0x1), "deflate64.txt", method=9)

    skipped = extract_zip(data, tmp_path / "out", files=files)

    assert skipped == [SkippedEntry("secret.txt", "encrypted"), SkippedEntry("deflate64.txt", "unsupported")]
    assert _tree(tmp_path / "out") == ["plain.txt"]


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path, files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w") as member:
        for _ in range(32):
            member.write(bytes(1 << 20))
    assert len(buf.getvalue()) < 100_000

    with pytest.raises(ArchiveRefused) as caught:
        extract_zip(buf.getvalue(), tmp_path / "out", files=files)

    assert "zip bomb" in str(caught.value) and "未解压" in caught.value.message("zh")
    assert _tree(tmp_path) == []


def test_declared_sizes_over_the_limit_are_refused(tmp_path, files):
    # Headers that claim 600 MB: the central directory is checked before anything is inflated.
    data = _patch(zip_of({"big.txt": b"x" * 1000}), "big.txt", size=600_000_000)
    with pytest.raises(ArchiveRefused) as caught:
        extract_zip(data, tmp_path / "out", files=files)
    assert "600.0 MB, more than the 500.0 MB allowed" in str(caught.value)

    with pytest.raises(ArchiveRefused, match="it would unpack to"):
        extract_zip(zip_of({"a.txt": b"a" * 30, "b.txt": b"b" * 30}), tmp_path / "out", max_total_bytes=50, files=files)
    assert _tree(tmp_path) == []


def test_a_member_larger_than_declared_is_refused_as_damaged_and_nothing_is_kept(tmp_path, files):
    data = _patch(zip_of({"first.txt": b"fine", "liar.txt": b"y" * 100_000}), "liar.txt", size=10)
    dest = tmp_path / "out"

    with pytest.raises(ArchiveRefused) as caught:
        extract_zip(data, dest, files=files)

    assert "liar.txt" in str(caught.value)
    assert _tree(tmp_path) == []


def test_extraction_stops_at_the_declared_size_even_if_zipfile_did_not(tmp_path, monkeypatch, files):
    # zipfile cuts a member at its declared size today (then fails its CRC); the guard must not rely on that.
    data = zip_of({"a.txt": b"12345"})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: io.BytesIO(b"x" * 10_000))
    with pytest.raises(ArchiveRefused, match="holds more data than its header declares"):
        extract_zip(data, tmp_path / "out", files=files)
    assert _tree(tmp_path) == []


def test_too_many_files_are_refused(tmp_path, files):
    with pytest.raises(ArchiveRefused, match="holds 30 entries, more than the 10 allowed"):
        extract_zip(zip_of({f"f{i}.txt": b"x" for i in range(30)}), tmp_path / "out", max_files=10, files=files)
    assert _tree(tmp_path) == []


def test_a_file_and_a_folder_of_the_same_name_leave_the_target_untouched(tmp_path, files):
    with pytest.raises(ArchiveRefused, match="could not be written"):
        extract_zip(zip_of({"a": b"file", "a/b.txt": b"inside"}), tmp_path / "out", files=files)
    assert _tree(tmp_path) == []


def test_gbk_names_from_chinese_windows_are_decoded(tmp_path, files):
    # zipfile only writes UTF-8 names, so ASCII stand-ins of the same length are swapped for GBK bytes.
    names = {name: letter * len(name.encode("gbk")) for name, letter in (("资料/说明.txt", b"A"), ("笔记.md", b"B"))}
    data = zip_of({placeholder.decode(): name.encode("utf-8") for name, placeholder in names.items()})
    for name, placeholder in names.items():
        data = data.replace(placeholder, name.encode("gbk"))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert all(not info.flag_bits & 0x800 for info in zf.infolist())

    assert extract_zip(data, tmp_path / "out", files=files) == []

    assert (tmp_path / "out" / "资料" / "说明.txt").read_text(encoding="utf-8") == "资料/说明.txt"
    assert (tmp_path / "out" / "笔记.md").read_text(encoding="utf-8") == "笔记.md"


@pytest.mark.parametrize("data", [b"", b"not a zip at all", zip_of({"a.txt": b"a" * 5000})[:-30]])
def test_garbage_or_truncated_archives_are_refused(tmp_path, data, files):
    with pytest.raises(ArchiveRefused, match="not a zip file"):
        extract_zip(data, tmp_path / "out", files=files)
    assert _tree(tmp_path) == []


def test_a_missing_archive_file_is_refused(tmp_path, files):
    with pytest.raises(ArchiveRefused) as caught:
        extract_zip(tmp_path / "gone.zip", tmp_path / "out", files=files)
    assert str(caught.value).startswith("gone.zip was not extracted")


@pytest.mark.parametrize(
    ("name", "saved"),
    [
        ("notes.md", "notes.md"),
        ("课程 笔记.md", "课程 笔记.md"),
        ("/etc/passwd", "passwd"),
        ("../../evil.txt", "evil.txt"),
        ("C:\\Users\\me\\report.docx", "report.docx"),
        ("..", "upload"),
        ("", "upload"),
        ("   ", "upload"),
        ("dir/", "upload"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("what?.md", "what_.md"),
        ("CON.txt", "_CON.txt"),
        ("trailing.txt. ", "trailing.txt"),
        (".env", ".env"),
    ],
)
def test_uploads_get_safe_names_inside_the_target(tmp_path, name, saved, files):
    dest = tmp_path / "uploads"
    path = save_upload(name, b"data", dest)
    assert path == dest / saved
    assert path.read_bytes() == b"data"
    assert _tree(tmp_path) == ["uploads", f"uploads/{saved}"]


def test_long_upload_names_are_shortened_keeping_the_extension(tmp_path, files):
    path = save_upload("长" * 200 + ".md", b"x", tmp_path)
    assert path.suffix == ".md" and len(path.name.encode()) <= 255 and path.read_bytes() == b"x"


def test_uploading_again_replaces_the_file(tmp_path, files):
    save_upload("a.md", b"old", tmp_path)
    assert save_upload("a.md", b"new", tmp_path).read_bytes() == b"new"
    assert _tree(tmp_path) == ["a.md"]
