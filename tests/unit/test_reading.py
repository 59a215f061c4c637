import codecs

import pytest

from core.knowledge.reading import UnreadableText, decode, looks_binary, read_text

TEXT = "知识库问答：LMDeploy 支持 4bit 量化。"


@pytest.mark.parametrize(
    "data",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        TEXT.encode("gb18030"),
        TEXT.encode("gbk"),
        TEXT.encode("utf-16"),  # with BOM
    ],
    ids=["utf-8", "utf-8-bom", "gb18030", "gbk", "utf-16-bom"],
)
def test_decodes_common_chinese_encodings(data):
    assert decode(data)[0] == TEXT


def test_windows_line_endings_become_plain(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n")
    assert read_text(path) == "one\ntwo\nthree\n"


def test_nul_bytes_mean_binary_but_utf16_does_not(tmp_path):
    binary = tmp_path / "blob.dat"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    utf16 = tmp_path / "u.txt"
    utf16.write_bytes(TEXT.encode("utf-16"))
    assert looks_binary(binary)
    assert not looks_binary(utf16)


def test_bytes_that_are_no_text_are_refused():
    with pytest.raises(UnreadableText):
        decode(bytes(range(128, 256)) * 40 + b"\xff\xfe\xfd" * 100 + bytes([0x81, 0x30]) * 3)
