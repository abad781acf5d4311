"""An exported multi-track (multi-ACCDOA) encoder: ONNX matches torch, the runtime reads its
slot labels from the manifest, and every consumer decodes through them."""

import json
import shutil

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from agent.core.features import compute_features
from agent.core.labels import LABELS
from agent.core.predictor import Clip
from agent.core.seld import decode_clip
from agent.localize.encoder import (
    DEFAULT_ENCODER_DIR,
    EncoderLocalizer,
    EncoderRuntime,
    StreamingEncoder,
)
from agent.track.tracker import detections_from_frames
from export.encoder_export import export_encoder
from training.models.encoder import build_encoder, load_checkpoint, save_checkpoint

TRACKS = 3
C = len(LABELS)


def _binaural(rng, seconds=3.0, delay=14):
    n = int(seconds * 48_000)
    x = (rng.standard_normal(n + 64) * 0.05).astype(np.float32)
    env = (np.sin(np.linspace(0, 9, n)) > 0).astype(np.float32)
    return np.stack([x[32:32 + n] * env, 0.6 * x[32 - delay:32 - delay + n] * env])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc3")
    torch.manual_seed(4)
    model = build_encoder("tiny", TRACKS).eval()
    sp, se = compute_features(_binaural(np.random.default_rng(0)), 48_000)
    model.set_normalisation(sp.mean(axis=1), sp.std(axis=1), se.mean(axis=0), se.std(axis=0))
    with torch.no_grad():  # activities well above the threshold on some slots, so decoding has work
        model.activity_head.bias.add_(2.0)
    save_checkpoint(d / "tiny3.pt", model, step=1)
    manifest = export_encoder(d / "tiny3.pt", d / "export", fp16=False,
                              verify_audio=[(_binaural(np.random.default_rng(i)), 48_000) for i in range(2)])
    return d, manifest


def test_a_three_track_export_matches_torch_and_says_its_tracks(exported):
    d, manifest = exported
    assert manifest["tracks"] == TRACKS and manifest["model_config"]["tracks"] == TRACKS
    rep = manifest["parity"]["fp32"]
    assert max(rep["max_abs_diff"].values()) < 1e-4 and rep["same_decoded_classes"] == rep["clips"]
    assert max(manifest["parity"]["stream_fp32"]["max_abs_diff"].values()) < 1e-4
    rt = EncoderRuntime(d / "export", mirror_tta=False)
    assert rt.tracks == TRACKS and rt.labels == LABELS and rt.slot_labels == LABELS * TRACKS
    model, _ = load_checkpoint(d / "tiny3.pt")
    sp, se = compute_features(_binaural(np.random.default_rng(9), seconds=4.3), 48_000)
    ref = model.infer(sp, se)
    got = rt.run(sp, se)
    assert got.accdoa.shape == (ref[0].shape[0], TRACKS * C, 3) and got.class_logits.shape[-1] == C
    assert np.abs(ref[0] - got.accdoa).max() < 1e-4 and np.abs(ref[1] - got.log_distance).max() < 1e-4
    ref_src = decode_clip(ref[0], ref[1], model.cfg.slot_labels, rt.output_rate_hz, rt.decode)
    got_src = decode_clip(got.accdoa, got.log_distance, rt.slot_labels, rt.output_rate_hz, rt.decode)
    assert ref_src and [s.label for s in got_src] == [s.label for s in ref_src]


def test_the_runtime_decodes_through_slot_labels(exported):
    d, _ = exported
    audio = _binaural(np.random.default_rng(5))
    for mirror in (False, True):
        loc = EncoderLocalizer(d / "export", mirror_tta=mirror)
        found = loc.localize(Clip("c", audio, 48_000))
        assert found and all(s.label in LABELS for s in found)
        frames = loc.runtime.run_audio(audio, 48_000)
        dets = detections_from_frames(frames, loc.runtime.slot_labels, loc.runtime.output_rate_hz)
        assert len(dets) == frames.n and any(f.detections for f in dets)
        with pytest.raises(BinauraError, match=f"must be \\(T, {C}, 3\\)"):
            detections_from_frames(frames, loc.runtime.labels, loc.runtime.output_rate_hz)
    # the stateful stream, with mirror averaging, gives the whole clip's frames
    rt = EncoderRuntime(d / "export", mirror_tta=True)
    whole = rt.run_audio(audio, 48_000)
    enc = StreamingEncoder(rt, hop_frames=3)
    parts = [enc.push(audio[:, i:i + 4800]) for i in range(0, audio.shape[1], 4800)] + [enc.flush()]
    acc = np.concatenate([p.accdoa for p in parts if p is not None])
    np.testing.assert_allclose(acc, whole.accdoa[:len(acc)], atol=1e-4)


def test_a_manifest_without_tracks_is_one_track_and_a_bad_count_is_refused(exported, tmp_path):
    rt = EncoderRuntime(DEFAULT_ENCODER_DIR)  # the shipped export names no tracks
    assert "tracks" not in rt.manifest and rt.tracks == 1 and rt.slot_labels == rt.labels
    d, _ = exported
    shutil.copytree(d / "export", tmp_path / "bad")
    m = json.loads((tmp_path / "bad" / "encoder.json").read_text())
    m["tracks"] = 9
    (tmp_path / "bad" / "encoder.json").write_text(json.dumps(m))
    with pytest.raises(BinauraError, match=r"tracks must be an integer in 1\.\.4"):
        EncoderRuntime(tmp_path / "bad")
