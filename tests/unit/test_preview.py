from core.knowledge.preview import SAMPLES, preview_folder
from core.knowledge.splitting import SplitterSettings


def test_sample_chunks_come_from_across_the_files(tmp_path):
    for n in range(12):
        parts = "\n\n".join(f"Part {p} of file {n}." for p in range(4))
        (tmp_path / f"file{n:02}.md").write_text(f"# File {n}\n\n{parts}")
    report = preview_folder(tmp_path, SplitterSettings(60, 0), embeddings=None, max_file_bytes=10**6)
    paths = [s["path"] for s in report.samples]
    assert len(paths) == SAMPLES == len(set(paths))  # one per file, not the first chunks of one file
    assert paths[0] == "file00.md" and paths[-1] == "file11.md"  # from the first file to the last
    again = preview_folder(tmp_path, SplitterSettings(60, 0), embeddings=None, max_file_bytes=10**6)
    assert again.samples == report.samples  # the same every time


def test_one_file_gives_samples_from_its_start_to_its_end(tmp_path):
    (tmp_path / "only.md").write_text("\n\n".join(f"Paragraph number {p} stands alone here." for p in range(30)))
    report = preview_folder(tmp_path, SplitterSettings(60, 0), embeddings=None, max_file_bytes=10**6)
    starts = [s["start_line"] for s in report.samples]
    assert len(starts) == SAMPLES and starts == sorted(starts) and starts[-1] > 50
