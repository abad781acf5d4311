"""The YAMNet runtime (ONNX Runtime, no torch): a clear error before set-up; with the fetched
weights, one row per 0.48 s patch, embeddings of rectified activity, scores in [0, 1]."""

import numpy as np
import pytest

from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.yamnet_features import default_yamnet_dir

pytest.importorskip("onnxruntime")
from agent.localize.yamnet import YamnetRuntime  # noqa: E402

FETCHED = (default_yamnet_dir() / "yamnet.json").is_file()


def test_before_set_up_the_error_says_how_to_set_up(tmp_path):
    with pytest.raises(BinauraError, match="yamnet_setup --ensure"):
        YamnetRuntime(tmp_path / "nothing-here")


def test_a_truncated_model_file_is_refused(tmp_path):
    if not FETCHED:
        pytest.skip("YAMNet not fetched; run `python -m training.models.yamnet_setup --ensure`")
    for name in ("yamnet.json", "yamnet_class_map.csv"):
        (tmp_path / name).write_bytes((default_yamnet_dir() / name).read_bytes())
    (tmp_path / "yamnet.onnx").write_bytes(b"\0" * 100)
    with pytest.raises(BinauraError, match="not the file the manifest records"):
        YamnetRuntime(tmp_path)


@pytest.mark.skipif(not FETCHED, reason="YAMNet not fetched; run `python -m training.models.yamnet_setup --ensure`")
def test_a_clip_gives_one_row_per_patch_and_silence_is_not_speech():
    rt = YamnetRuntime(verify_sha256=True)
    t = np.arange(48_000 * 2) / 48_000
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    out = rt(np.stack([tone, tone]), 48_000)
    assert out.embeddings.shape == (4, 1024) and out.scores.shape == (4, 521)  # 2 s -> 4 patches
    assert out.label_scores.shape == (4, len(LABELS))
    np.testing.assert_allclose(out.start_s, [0.0, 0.48, 0.96, 1.44])
    assert out.embeddings.min() >= 0 and 0 <= out.scores.min() and out.scores.max() <= 1
    top = rt.audioset.top_classes(out.scores.mean(0), 3)
    assert "Sine wave" in [n for n, _ in top]  # a pure 1 kHz tone
    silent = rt(np.zeros(16_000, np.float32), 16_000)
    assert silent.scores[0, rt.class_names.index("Speech")] < 0.2
