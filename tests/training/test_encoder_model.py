"""The encoder: its declared time reach is the true one, targets and decoding agree, it learns."""

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from agent.core.features import FeatureConfig
from agent.core.scene import Scene, SourceLabel
from agent.core.seld import decode_clip
from training.models.config import EncoderConfig, encoder_tiny_config
from training.models.encoder import (
    BinauralEncoder,
    OutputEnsemble,
    average_checkpoints,
    build_encoder,
    load_checkpoint,
    load_scoring_model,
    save_checkpoint,
)
from training.models.targets import output_frame_times_s, seld_targets


def _frame_moves(fn, sp, se, k, j) -> bool:
    """Whether output frame j of fn(spatial, semantic) -> (B, T', D) changes when input
    frame k of both feature streams does."""
    sp2, se2 = sp.clone(), se.clone()
    sp2[..., k, :] += 3.0
    se2[:, k] += 3.0
    with torch.no_grad():
        return not torch.allclose(fn(sp2, se2)[0, j], fn(sp, se)[0, j], atol=1e-6)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_time_context_is_exactly_the_receptive_field(size):
    torch.manual_seed(0)
    model = build_encoder(size).eval()
    left, right = model.time_context()
    p, t, j = model.time_pool, 400, 40  # output frame 40 pools input frames 200..204
    sp, se = torch.randn(1, 6, t, 64), torch.randn(1, t, 64)
    lo, hi = p * j - left, p * j + right

    def moves(k):
        return _frame_moves(lambda a, b: model(a, b)[3], sp, se, k, j)

    assert moves(lo) and moves(hi) and moves(p * j)
    assert not moves(lo - 1) and not moves(hi + 1)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_front_and_back_split_the_network_with_the_declared_reach(size):
    """forward = back(front(.)); a front frame reads exactly front_context input frames; an
    output frame reads front frames j - history_frames .. j, never later ones."""
    torch.manual_seed(0)
    model = build_encoder(size).eval()
    p, t, j = model.time_pool, 400, 40
    sp, se = torch.randn(1, 6, t, 64), torch.randn(1, t, 64)
    with torch.no_grad():
        hs, hm = model.front(sp, se)
        for a, b in zip(model(sp, se), model.back(hs, hm), strict=True):
            assert torch.equal(a, b)
    left, right = model.front_context()
    lo, hi = p * j - left, p * j + right

    def front_moves(k):
        return _frame_moves(lambda a, b: model.front(a, b)[0], sp, se, k, j)

    assert front_moves(lo) and front_moves(hi) and not front_moves(lo - 1) and not front_moves(hi + 1)
    h = model.history_frames()

    def back_moves(k):
        hs2 = hs.clone()
        hs2[:, k] += 3.0
        with torch.no_grad():
            return not torch.allclose(model.back(hs2, hm)[3][0, j], model.back(hs, hm)[3][0, j], atol=1e-6)

    assert back_moves(j - h) and back_moves(j) and not back_moves(j - h - 1) and not back_moves(j + 1)


def test_checkpoint_round_trip_keeps_config_and_outputs(tmp_path):
    model = build_encoder("tiny").eval()
    save_checkpoint(tmp_path / "m.pt", model, step=7)
    loaded, ck = load_checkpoint(tmp_path / "m.pt")
    assert ck["step"] == 7 and loaded.cfg == model.cfg
    sp, se = torch.randn(1, 6, 50, 64), torch.randn(1, 50, 64)
    with torch.no_grad():
        for a, b in zip(model(sp, se), loaded(sp, se), strict=True):
            assert torch.equal(a, b)


def test_averaging_a_checkpoint_with_itself_changes_nothing_and_two_give_the_mean(tmp_path):
    torch.manual_seed(0)
    a, b = build_encoder("tiny").eval(), build_encoder("tiny").eval()
    save_checkpoint(tmp_path / "a.pt", a, step=3, lineage=[{"stage": 1}], decode={"activity_threshold": 0.4})
    save_checkpoint(tmp_path / "b.pt", b, step=9)
    average_checkpoints([tmp_path / "a.pt", tmp_path / "a.pt"], tmp_path / "aa.pt")
    same, ck = load_checkpoint(tmp_path / "aa.pt")
    sp, se = torch.randn(1, 6, 50, 64), torch.randn(1, 50, 64)
    with torch.no_grad():
        for x, y in zip(a(sp, se), same(sp, se), strict=True):
            assert torch.allclose(x, y, atol=1e-6)
    # the first checkpoint's decoding and lineage, plus one entry naming the members
    assert ck["decode"] == {"activity_threshold": 0.4} and ck["lineage"][0] == {"stage": 1}
    assert [m["step"] for m in ck["lineage"][-1]["average_of"]] == [3, 3]
    average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ab.pt")
    mean, _ = load_checkpoint(tmp_path / "ab.pt")
    for k, v in mean.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, (a.state_dict()[k] + b.state_dict()[k]) / 2, atol=1e-6), k
    assert not list(tmp_path.glob(".*.tmp"))


def test_averaging_refuses_one_checkpoint_and_mixed_architectures(tmp_path):
    save_checkpoint(tmp_path / "tiny.pt", build_encoder("tiny"))
    save_checkpoint(tmp_path / "small.pt", build_encoder("small"))
    with pytest.raises(BinauraError, match="at least two"):
        average_checkpoints([tmp_path / "tiny.pt"], tmp_path / "x.pt")
    with pytest.raises(BinauraError, match="config differs"):
        average_checkpoints([tmp_path / "tiny.pt", tmp_path / "small.pt"], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_an_output_ensemble_of_one_model_twice_is_that_model_and_of_two_reads_their_mean(tmp_path):
    torch.manual_seed(1)
    a, b = build_encoder("tiny").eval(), build_encoder("tiny").eval()
    sp, se = torch.randn(2, 6, 60, 64), torch.randn(2, 60, 64)
    with torch.no_grad():
        ra, rb = a(sp, se, training_outputs=True), b(sp, se, training_outputs=True)
        same = OutputEnsemble([a, a])(sp, se, training_outputs=True)
        pair = OutputEnsemble([a, b])(sp, se, training_outputs=True)
    for i in (0, 1, 2, 3, 4, 6):
        assert torch.allclose(same[i], ra[i], atol=1e-6), i
    assert torch.allclose(torch.sigmoid(same[5]), torch.sigmoid(ra[5]), atol=1e-5)
    assert torch.allclose(torch.softmax(same[7], -1), torch.softmax(ra[7], -1), atol=1e-6)
    # two members: ACCDOA vectors and distances averaged, polar bin probabilities averaged,
    # embeddings the first member's
    assert torch.allclose(pair[0], (ra[0] + rb[0]) / 2, atol=1e-6)
    assert torch.allclose(pair[1], (ra[1] + rb[1]) / 2, atol=1e-6)
    assert torch.equal(pair[3], ra[3]) and torch.equal(pair[4], ra[4])
    mixed = (torch.softmax(ra[7], -1) + torch.softmax(rb[7], -1)) / 2
    assert torch.allclose(torch.softmax(pair[7], -1), mixed, atol=1e-6)
    assert len(pair) == 8 and len(OutputEnsemble([a, b])(sp, se)) == 5
    save_checkpoint(tmp_path / "a.pt", a)
    save_checkpoint(tmp_path / "small.pt", build_encoder("small"))
    assert isinstance(load_scoring_model(f"{tmp_path / 'a.pt'}+{tmp_path / 'a.pt'}"), OutputEnsemble)
    assert isinstance(load_scoring_model(tmp_path / "a.pt"), BinauralEncoder)
    with pytest.raises(BinauraError, match="config differs"):
        load_scoring_model(f"{tmp_path / 'a.pt'}+{tmp_path / 'small.pt'}")
    with pytest.raises(BinauraError, match="joined by"):
        load_scoring_model(f"{tmp_path / 'a.pt'}+")
    with pytest.raises(BinauraError, match="at least two"):
        OutputEnsemble([a])


def test_bad_config_reports_every_problem():
    from agent.core.errors import ConfigError

    cfg = encoder_tiny_config()
    cfg.spatial.stages = ((8, 1, 1, 3),)  # 64 bands do not divide by 3
    cfg.semantic.stages = ((4, 1, 2, 4),)  # pools time differently from the spatial branch
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert "divisible" in str(e.value) and "pool time alike" in str(e.value)


def _scene(az, el, dist, onset, offset, label="dog"):
    return Scene("s", "a.wav", 48_000, 5.0, [SourceLabel(label, az, el, dist, onset, offset)], None, "kemar-mit")


def test_targets_point_at_the_source_while_it_sounds():
    feat = FeatureConfig()
    labels = ("dog", "siren")
    acc, logd, act = seld_targets(_scene(90.0, 0.0, 2.0, 1.0, 3.0), 49, 5, feat, labels, (-1.6, 3.0))
    t = output_frame_times_s(49, 5, feat)
    on = (t >= 1.0) & (t < 3.0)
    assert np.array_equal(act[:, 0], on) and not act[:, 1].any()
    assert np.allclose(acc[on, 0], [0.0, 1.0, 0.0], atol=1e-6)  # +90 deg = +y = the left ear
    assert np.allclose(acc[~on], 0.0)
    assert np.allclose(logd[on, 0], np.log(2.0))


def test_targets_follow_a_turning_head():
    feat = FeatureConfig()
    scene = _scene(90.0, 0.0, 2.0, 0.0, 5.0)  # on the left at t = 0
    scene.extra["head_orientation"] = [{"t_s": 1.0, "yaw_deg": 0.0}, {"t_s": 2.0, "yaw_deg": 90.0}]
    acc, _, act = seld_targets(scene, 49, 5, feat, ("dog",), (-1.6, 3.0))
    t = output_frame_times_s(49, 5, feat)
    assert act[:, 0].all()
    assert np.allclose(acc[t < 1.0, 0], [0.0, 1.0, 0.0], atol=1e-6)  # still: on the left
    assert np.allclose(acc[t > 2.0, 0], [1.0, 0.0, 0.0], atol=1e-6)  # the head turned 90 deg left: ahead
    mid = np.argmin(np.abs(t - 1.5))
    assert np.degrees(np.arctan2(acc[mid, 0, 1], acc[mid, 0, 0])) == pytest.approx(90 - 90 * (t[mid] - 1.0), abs=0.5)


def test_decoding_targets_gives_back_the_source():
    feat = FeatureConfig()
    labels = ("dog", "siren")
    scene = _scene(-135.0, 20.0, 3.0, 0.5, 4.5, label="siren")
    acc, logd, _ = seld_targets(scene, 49, 5, feat, labels, (-1.6, 3.0))
    (est,) = decode_clip(acc, logd, labels, 10.0)
    assert est.label == "siren" and est.distance_m == pytest.approx(3.0, rel=1e-4)
    assert est.azimuth_deg == pytest.approx(-135.0, abs=1e-3) and est.elevation_deg == pytest.approx(20.0, abs=1e-3)


def test_mirroring_twice_is_the_identity():
    from agent.core.features import mirror_spatial

    x = torch.randn(2, 6, 20, 64)
    assert torch.equal(mirror_spatial(mirror_spatial(x)), x)


def test_tiny_encoder_fits_one_batch():
    torch.manual_seed(0)
    model = BinauralEncoder(encoder_tiny_config())
    feat = FeatureConfig()
    labels = model.cfg.labels
    sp, se = torch.randn(4, 6, 100, 64), torch.randn(4, 100, 64)
    scenes = [_scene(a, 0.0, 1.5, 0.0, 5.0, label=labels[i]) for i, a in enumerate((60, -60, 150, -150))]
    tg = [seld_targets(s, 20, 5, feat, labels, (-1.6, 3.0)) for s in scenes]
    acc_t = torch.from_numpy(np.stack([t[0] for t in tg]))
    from training.recipes.encoder import EncoderTrainConfig, seld_loss

    cfg = EncoderTrainConfig()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(40):
        out = model(sp, se, training_outputs=True)
        loss = seld_loss(out, acc_t, torch.from_numpy(np.stack([t[1] for t in tg])),
                         torch.from_numpy(np.stack([t[2] for t in tg])), cfg)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def test_config_dict_round_trip():
    cfg = EncoderConfig()
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
