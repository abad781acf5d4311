"""Exported encoders: ONNX matches torch, streaming matches offline, tampering is refused."""

import json
import shutil

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from agent.core.features import compute_features, mirror_spatial
from agent.localize.encoder import (
    DEFAULT_ENCODER_DIR,
    EncoderLocalizer,
    EncoderRuntime,
    StreamingEncoder,
)
from export.encoder_export import export_encoder
from training.models.encoder import build_encoder, load_checkpoint, save_checkpoint


def _binaural(rng, seconds=3.0, delay=14):
    n = int(seconds * 48_000)
    x = (rng.standard_normal(n + 64) * 0.05).astype(np.float32)
    env = (np.sin(np.linspace(0, 9, n)) > 0).astype(np.float32)  # events that start and stop
    return np.stack([x[32:32 + n] * env, 0.6 * x[32 - delay:32 - delay + n] * env])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    torch.manual_seed(3)
    model = build_encoder("tiny").eval()
    rng = np.random.default_rng(0)
    sp, se = compute_features(_binaural(rng), 48_000)
    model.set_normalisation(sp.mean(axis=1), sp.std(axis=1), se.mean(axis=0), se.std(axis=0))
    # BatchNorm statistics away from the identity, as after training
    for mod in model.modules():
        if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    save_checkpoint(d / "tiny.pt", model, step=1)
    manifest = export_encoder(d / "tiny.pt", d / "export", fp16=True,
                              verify_audio=[(_binaural(np.random.default_rng(i)), 48_000) for i in range(2)])
    return d, manifest


def test_onnx_matches_torch_within_1e4(exported):
    d, manifest = exported
    rep = manifest["parity"]["fp32"]
    assert max(rep["max_abs_diff"].values()) < 1e-4
    assert rep["same_decoded_classes"] == rep["clips"]
    rt = EncoderRuntime(d / "export")
    model, _ = load_checkpoint(d / "tiny.pt")
    sp, se = compute_features(_binaural(np.random.default_rng(9), seconds=4.3), 48_000)  # another length
    with torch.no_grad():
        ref = model(torch.from_numpy(sp[None]), torch.from_numpy(se[None]))
    got = rt.run(sp, se)
    assert np.abs(ref[0][0].numpy() - got.accdoa).max() < 1e-4
    assert np.abs(ref[3][0].numpy() - got.spatial_emb).max() < 1e-4


def test_fp16_variant_exists_and_stays_close(exported):
    d, manifest = exported
    assert (d / "export" / "encoder.fp16.onnx").stat().st_size < (d / "export" / "encoder.onnx").stat().st_size
    rep = manifest["parity"]["fp16"]
    for name in ("log_distance", "class_logits", "spatial_emb", "semantic_emb"):
        assert rep["max_abs_diff"][name] < 5e-2, name
    # the polar angle is read at its most probable bin: fp16 may pick a neighbouring bin on a near tie
    assert rep["same_decoded_classes"] == rep["clips"]
    assert manifest["opset"] >= 17
    # accdoa (activity x direction) on a clip the export never saw: every activity (the vector's
    # length) within 0.01 of torch's; the direction of active frames unmoved but for the rare
    # near-tie where fp16 rounding picks another polar bin
    model, _ = load_checkpoint(d / "tiny.pt")
    sp, se = compute_features(_binaural(np.random.default_rng(11), seconds=4.0), 48_000)
    ref = model.infer(sp, se)[0]
    got = EncoderRuntime(d / "export", precision="fp16", mirror_tta=False).run(sp, se).accdoa
    na, nb = np.linalg.norm(ref, axis=-1), np.linalg.norm(got, axis=-1)
    assert np.abs(na - nb).max() < 1e-2
    active = na > 0.1
    assert active.mean() > 0.5
    cos = (ref * got).sum(-1) / np.maximum(na * nb, 1e-9)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))[active]
    assert np.percentile(angle, 99) < 1.0
    assert (angle > 360 / model.cfg.polar_bins).mean() < 0.01


@pytest.mark.parametrize("stateful", [True, False])
@pytest.mark.parametrize("chunk,hop_frames", [(480, 1), (4801, 5), (48_000, 3), (10**7, 5)])
def test_streaming_equals_offline(exported, chunk, hop_frames, stateful):
    """Both ways of streaming (front frames kept, or windows re-run) give the whole-clip pass."""
    d, _ = exported
    rt = EncoderRuntime(d / "export")
    audio = _binaural(np.random.default_rng(5), seconds=5.0)
    offline = rt.run_audio(audio, 48_000)
    enc = StreamingEncoder(rt, hop_frames, stateful=stateful)
    assert enc.stateful is stateful
    parts = [enc.push(audio[:, i:i + chunk]) for i in range(0, audio.shape[1], chunk)] + [enc.flush()]
    parts = [p for p in parts if p is not None]
    assert [p.start for p in parts] == list(np.cumsum([0] + [p.n for p in parts[:-1]]))
    for name in ("accdoa", "log_distance", "class_logits", "spatial_emb", "semantic_emb"):
        got = np.concatenate([getattr(p, name) for p in parts])
        assert got.shape == getattr(offline, name).shape
        assert np.abs(got - getattr(offline, name)).max() < 1e-4


def test_stateful_stream_pair_is_exported_checked_and_optional(exported, tmp_path):
    """The export carries the front/back pair and its own stream-vs-whole-clip check; an export
    without the pair (an older one) streams by windows, and asking it for state is an error;
    a tampered front graph is refused like the main one."""
    d, manifest = exported
    st = manifest["streaming"]
    assert set(st["files"]) == {"fp32", "fp16"} and st["history_frames"] == 6  # tiny: spatial dilations (1, 2), kernel 3
    assert max(manifest["parity"]["stream_fp32"]["max_abs_diff"].values()) < 1e-4
    assert max(manifest["parity"]["stream_fp16"]["max_abs_diff"].values()) < 5e-2  # fp16 pair vs fp16 graph
    rt = EncoderRuntime(d / "export")
    assert rt.can_stream_state and StreamingEncoder(rt).stateful
    assert rt.front_context_left < rt.context_left and rt.front_context_right == rt.context_right
    old = tmp_path / "old"
    shutil.copytree(d / "export", old)
    m = json.loads((old / "encoder.json").read_text())
    del m["streaming"]
    (old / "encoder.json").write_text(json.dumps(m))
    rt_old = EncoderRuntime(old)
    assert not rt_old.can_stream_state and not StreamingEncoder(rt_old).stateful
    with pytest.raises(BinauraError, match="front/back pair"):
        StreamingEncoder(rt_old, stateful=True)
    enc = StreamingEncoder(rt, 1)  # the kept front frames hold the mirror setting's batch size
    audio = _binaural(np.random.default_rng(2), seconds=3.0)
    assert enc.push(audio[:, :48_000]) is not None
    rt.mirror_tta = True
    with pytest.raises(BinauraError, match="mirror_tta changed"):
        enc.push(audio[:, 48_000:])
    enc.reset()
    assert enc.push(audio[:, :48_000]) is not None
    odd = tmp_path / "odd"
    shutil.copytree(d / "export", odd)
    m = json.loads((odd / "encoder.json").read_text())
    m["streaming"]["files"]["fp32"] = {"front": "encoder.front.onnx"}
    (odd / "encoder.json").write_text(json.dumps(m))
    with pytest.raises(BinauraError, match="must name front and back"):
        EncoderRuntime(odd)
    bad = tmp_path / "bad"
    shutil.copytree(d / "export", bad)
    with open(bad / st["files"]["fp32"]["front"], "ab") as f:
        f.write(b"\0")
    with pytest.raises(BinauraError, match="encoder.front.onnx: SHA-256"):
        EncoderRuntime(bad)


def test_mirror_averaging_makes_the_encoder_left_right_symmetric(exported):
    """Swapping the ears must reflect every direction (y -> -y) and change nothing else.
    A trained network only learns this approximately; averaging each clip with its
    mirror image makes it exact, and streaming still reproduces the offline pass."""
    d, _ = exported
    plain = EncoderRuntime(d / "export")
    rt = EncoderRuntime(d / "export", mirror_tta=True)
    audio = _binaural(np.random.default_rng(7), seconds=4.0)
    a = rt.run_audio(audio, 48_000)
    b = rt.run_audio(audio[::-1].copy(), 48_000)
    flip = np.array([1.0, -1.0, 1.0], np.float32)
    assert np.abs(a.accdoa - b.accdoa * flip).max() < 1e-4
    assert np.abs(a.log_distance - b.log_distance).max() < 1e-4
    p, q = plain.run_audio(audio, 48_000), plain.run_audio(audio[::-1].copy(), 48_000)
    assert np.abs(p.accdoa - q.accdoa * flip).max() > 1e-3  # the untrained net alone is not symmetric
    assert np.abs(a.spatial_emb - p.spatial_emb).max() < 1e-5  # embeddings stay the clip's own
    for stateful in (True, False):
        enc = StreamingEncoder(rt, 3, stateful=stateful)
        parts = [enc.push(audio[:, i:i + 9600]) for i in range(0, audio.shape[1], 9600)] + [enc.flush()]
        got = np.concatenate([x.accdoa for x in parts if x is not None])
        assert np.abs(got - a.accdoa).max() < 1e-4


def test_an_export_can_make_mirror_averaging_the_runtime_default(exported, tmp_path):
    """`export encoder --mirror` writes the choice into the manifest; the runtime follows it
    unless told otherwise, and parity is still checked on the single pass torch runs."""
    from export.registry import make_localizer

    d, _ = exported
    m = export_encoder(d / "tiny.pt", tmp_path / "m", fp16=False,
                       verify_audio=[(_binaural(np.random.default_rng(1)), 48_000)], mirror_tta=True)
    assert m["mirror_tta"] is True and max(m["parity"]["fp32"]["max_abs_diff"].values()) < 1e-4
    audio = _binaural(np.random.default_rng(7), seconds=4.0)
    default = EncoderRuntime(tmp_path / "m").run_audio(audio, 48_000)
    forced = EncoderRuntime(d / "export", mirror_tta=True).run_audio(audio, 48_000)
    single = EncoderRuntime(tmp_path / "m", mirror_tta=False).run_audio(audio, 48_000)
    assert np.abs(default.accdoa - forced.accdoa).max() < 1e-6
    assert np.abs(default.accdoa - single.accdoa).max() > 1e-3
    assert EncoderRuntime(d / "export").mirror_tta is False  # exports without the key: one pass
    assert make_localizer(f"{tmp_path / 'm'}:single").runtime.mirror_tta is False
    assert make_localizer(str(tmp_path / "m")).runtime.mirror_tta is True
    assert make_localizer(f"{d / 'export'}:mirror").runtime.mirror_tta is True


def test_tampered_or_mismatched_export_is_refused(exported, tmp_path):
    d, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(d / "export", bad)
    with open(bad / "encoder.onnx", "ab") as f:
        f.write(b"\0")
    m = json.loads((bad / "encoder.json").read_text())
    m["coordinate_convention"] = "someone-elses"
    (bad / "encoder.json").write_text(json.dumps(m))
    with pytest.raises(BinauraError) as e:
        EncoderRuntime(bad)
    assert "encoder.onnx: SHA-256" in str(e.value) and "coordinate convention" in str(e.value)
    with pytest.raises(BinauraError, match="manifest"):
        EncoderRuntime(tmp_path / "nothing-here")


def test_shipped_encoder_matches_its_checkpoint_on_benchmark_clips():
    """The default the agent runs is the export of the shipped checkpoint: same outputs, same sources."""
    from agent.core.geometry import great_circle_deg
    from agent.core.seld import decode_clip
    from export.speed import DEFAULT_CHECKPOINT
    from training.synth.config import preset
    from training.synth.scenes import render_scene, sample_spec

    manifest = json.loads((DEFAULT_ENCODER_DIR / "encoder.json").read_text())
    from agent.localize.encoder import sha256_file

    assert manifest["checkpoint_sha256"] == sha256_file(DEFAULT_CHECKPOINT)
    rt = EncoderRuntime(mirror_tta=False)
    default = EncoderRuntime()  # as the agent runs it: with the manifest's mirror averaging
    assert default.mirror_tta == manifest.get("mirror_tta", False)
    model, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    cfg = preset("bench")
    flip = np.array([1.0, -1.0, 1.0], np.float32)
    for i in range(3):
        audio, _ = render_scene(sample_spec(cfg, 20261126, i), cfg)
        sp, se = compute_features(audio, 48_000)
        with torch.no_grad():
            ref = [t[0].numpy() for t in model(torch.from_numpy(sp[None]), torch.from_numpy(se[None]))]
            mir = model(torch.from_numpy(mirror_spatial(sp)[None]), torch.from_numpy(se[None]))[0][0].numpy()
        got = rt.run(sp, se)
        assert np.abs(ref[0] - got.accdoa).max() < 1e-4
        want = 0.5 * (ref[0] + mir * flip) if default.mirror_tta else ref[0]
        assert np.abs(want - default.run(sp, se).accdoa).max() < 1e-4
        a = decode_clip(ref[0], ref[1], rt.labels, rt.output_rate_hz)
        b = decode_clip(got.accdoa, got.log_distance, rt.labels, rt.output_rate_hz)
        assert [s.label for s in a] == [s.label for s in b]
        for x, y in zip(a, b, strict=True):
            assert great_circle_deg(x.azimuth_deg, x.elevation_deg, y.azimuth_deg, y.elevation_deg) < 0.01


def test_head_scale_lets_the_shipped_encoder_hear_a_larger_head():
    """A head 1.25 times KEMAR's (interaural delays x1.25, pinna features at 1/1.25 of their
    frequencies) misleads an encoder that learnt KEMAR; told the head's size, it is back on target."""
    from agent.core.geometry import great_circle_deg
    from agent.core.predictor import Clip
    from training.synth.config import SynthConfig
    from training.synth.scenes import render_scene, sample_spec

    cfg = SynthConfig(split="bench", heads=("kemar@1.25",), min_sources=1, max_sources=1, p_reverberant=0.0,
                      duration_s=2.0, event_duration_s=(2.0, 2.0), snr_db=(30.0, 30.0)).validate()
    locs = {s: EncoderLocalizer(head_scale=s) for s in (1.0, 1.25)}
    errors = {s: [] for s in locs}
    for i in range(8):
        audio, scene = render_scene(sample_spec(cfg, 5, i), cfg)
        true = scene.sources[0]
        for s, loc in locs.items():
            found = loc.localize(Clip(scene.id, audio, 48_000))
            errors[s].append(min((great_circle_deg(p.azimuth_deg, p.elevation_deg, true.azimuth_deg,
                                                   true.elevation_deg) for p in found), default=180.0))
    assert np.mean(errors[1.25]) < 15.0  # measured 6.6 deg
    assert np.mean(errors[1.25]) < 0.5 * np.mean(errors[1.0])  # measured 46 deg without the scale
    # a stream hears with the runtime's head
    stream = StreamingEncoder(locs[1.25].runtime, 5)
    got = np.concatenate([f.accdoa for f in (stream.push(audio[:, :48_000]), stream.push(audio[:, 48_000:]),
                                             stream.flush()) if f is not None])
    whole = locs[1.25].runtime.run_audio(audio, 48_000).accdoa
    assert got.shape == whole.shape and np.abs(got - whole).max() < 1e-4


def test_localizer_on_a_clip_at_another_rate_resamples():
    """A 44.1 kHz recording is heard as the same scene at 48 kHz: the shipped encoder names the
    same sources in the same places (within 3 deg), near the truth. Fed to the features without
    resampling, the interaural delays and pinna notches would sit 9% off."""
    from scipy.signal import resample_poly

    from agent.core.geometry import great_circle_deg
    from agent.core.predictor import Clip
    from training.synth.config import SynthConfig
    from training.synth.scenes import render_scene, sample_spec

    cfg = SynthConfig(split="bench", heads=("kemar-mit",), min_sources=1, max_sources=1, p_reverberant=0.0,
                      duration_s=2.0, event_duration_s=(2.0, 2.0), snr_db=(30.0, 30.0),
                      classes=("speech", "clapping", "footsteps")).validate()
    loc = EncoderLocalizer(mirror_tta=False)
    errors = []
    for i in range(3):
        audio, scene = render_scene(sample_spec(cfg, 11, i), cfg)
        at48 = loc.localize(Clip(scene.id, audio, 48_000))
        at44 = loc.localize(Clip(scene.id, resample_poly(audio, 147, 160, axis=-1).astype(np.float32), 44_100))
        assert [p.label for p in at44] == [p.label for p in at48] and at48
        for a, b in zip(at44, at48, strict=True):
            assert great_circle_deg(a.azimuth_deg, a.elevation_deg, b.azimuth_deg, b.elevation_deg) < 3.0
        true = scene.sources[0]
        errors.append(min(great_circle_deg(p.azimuth_deg, p.elevation_deg, true.azimuth_deg, true.elevation_deg)
                          for p in at44))
    assert np.mean(errors) < 30.0


def test_export_refuses_a_folder_it_did_not_make(exported, tmp_path):
    """Exporting into a project folder must not delete what is in it."""
    d, _ = exported
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "README.md").write_text("mine")
    with pytest.raises(BinauraError, match="README.md"):
        export_encoder(d / "tiny.pt", proj, fp16=False)
    assert [p.name for p in proj.iterdir()] == ["README.md"] and (proj / "README.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no temp folder left


def test_a_broken_export_fails_its_gates_and_replaces_nothing(exported, tmp_path, monkeypatch):
    """An ONNX graph that no longer computes what torch does (here: a distance bias off by 0.01,
    as a broken exporter might write) is refused before the swap; the earlier export stays."""
    import copy

    import export.encoder_export as ee
    from agent.localize.encoder import sha256_file

    d, _ = exported
    out = tmp_path / "out"
    good = ee.export_encoder(d / "tiny.pt", out, fp16=False)
    assert good["gates"]["fp32_max_abs_diff"] == 1e-4
    before = sha256_file(out / "encoder.onnx")
    real = ee._export_onnx

    def broken(model, path):
        bad = copy.deepcopy(model)
        with torch.no_grad():
            bad.distance_head.bias += 0.01
        real(bad, path)

    monkeypatch.setattr(ee, "_export_onnx", broken)
    with pytest.raises(BinauraError, match=r"fp32 ONNX differs from torch by 0\.01 on log_distance") as e:
        ee.export_encoder(d / "tiny.pt", out, fp16=False)
    assert "was left as it was" in str(e.value)
    assert sha256_file(out / "encoder.onnx") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_export_gates_name_each_miss():
    from export.encoder_export import ExportGates

    ok = {"max_abs_diff": dict.fromkeys(("accdoa", "log_distance"), 1e-6), "clips": 4,
          "same_decoded_classes": 4, "max_direction_diff_deg": 0.01}
    assert ExportGates().failures({"fp32": ok, "fp16": ok, "stream_fp32": ok}, polar_bins=24) == []
    classes = {**ok, "same_decoded_classes": 3}
    turned = {**ok, "max_direction_diff_deg": 16.0}  # more than one 15-degree polar bin
    stream = {**ok, "max_abs_diff": {"accdoa": 3e-4, "log_distance": 0.0}}
    got = ExportGates().failures({"fp32": classes, "fp16": turned, "stream_fp32": stream}, polar_bins=24)
    assert len(got) == 3
    assert "fp32 ONNX decodes other classes than torch on 1 of 4 clips" in got[0]
    assert "fp16 ONNX moves a decoded direction by 16.00 deg (allowed 15)" in got[1]
    assert "stateful stream differs from the whole-clip pass by 0.0003 on accdoa" in got[2]
