"""The benches' recording wrapper hands the job everything the model offers, so the job they time
cuts chunks and sizes batches exactly as the app's does."""

from bench.ingest import RecordingEmbeddings
from tests.fakes import HashEmbeddings


class CountingModel(HashEmbeddings):
    max_tokens = 256
    device = "cuda:0"

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def test_the_wrapper_records_batches_and_passes_the_model_s_limits_through():
    recording = RecordingEmbeddings(CountingModel())
    recording.embed_documents(["a b", "c"])
    assert recording.batches == [["a b", "c"]]
    assert recording.count_tokens("a b c") == 5
    assert (recording.max_tokens, recording.device) == (256, "cuda:0")
