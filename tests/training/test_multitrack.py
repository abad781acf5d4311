"""Multi-track (multi-ACCDOA) encoders: config, targets, the permutation-invariant loss, training.

Two sources of one class (two dogs) need two output slots of that class; the loss must not
care which of them each dog lands on, and with one track everything is as before the option.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from agent.core.errors import BinauraError, ConfigError
from agent.core.features import FeatureConfig
from agent.core.geometry import sph_to_cart
from agent.core.labels import LABELS
from agent.core.scene import Scene, SourceLabel
from training.models.config import BUILDERS, EncoderConfig
from training.models.encoder import build_encoder, load_checkpoint, with_tracks
from training.models.targets import output_frame_times_s, seld_targets
from training.recipes import encoder as recipe
from training.recipes.encoder import EncoderTrainConfig, seld_loss, train_encoder
from training.recipes.encoder_data import FeatureCache, build_cache, default_cache_dir
from training.recipes.encoder_pit import reorder_tracks
from training.synth.build import build_dataset
from training.synth.config import SynthConfig

SHIPPED = "training/assets/encoder_small.pt"
C = len(LABELS)
DOG = LABELS.index("dog")


def _two_dogs(third: bool = False, siren: bool = True) -> Scene:
    """A dog on the left from 1.0 s, another on the right from 0.5 s, a siren ahead (and a third
    dog behind)."""
    src = [SourceLabel("dog", -90.0, 0.0, 3.0, 1.0, 4.0), SourceLabel("dog", 90.0, 0.0, 1.5, 0.5, 3.0)]
    if siren:
        src.append(SourceLabel("siren", 0.0, 20.0, 2.0, 0.0, 5.0))
    if third:
        src.append(SourceLabel("dog", 180.0, 0.0, 2.0, 2.0, 4.5))
    return Scene("s", "a.wav", 48_000, 5.0, src, None, "kemar-mit")


# --- config ---------------------------------------------------------------------------------

def test_tracks_are_validated_by_name_and_old_configs_read_as_one_track():
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ConfigError, match="tracks must be an integer in 1..4"):
            dataclasses.replace(BUILDERS["tiny"](), tracks=bad).validate()
    d = BUILDERS["tiny"]().to_dict()
    assert "tracks" not in d  # one track saves exactly as before the option
    assert EncoderConfig.from_dict(d).tracks == 1
    three = dataclasses.replace(BUILDERS["tiny"](), tracks=3).validate()
    assert EncoderConfig.from_dict(three.to_dict()).tracks == 3
    assert three.slot_labels == LABELS * 3
    with pytest.raises(ConfigError, match="tracks"):
        EncoderTrainConfig(tracks=7).validate()


def test_the_shipped_checkpoint_still_loads_as_one_track_with_the_same_weights():
    model, ck = load_checkpoint(SHIPPED)
    assert model.cfg.tracks == 1 and model.cfg.to_dict() == ck["config"]
    state = model.state_dict()
    assert list(state) == list(ck["model"])
    for k, v in ck["model"].items():
        assert state[k].shape == v.shape and torch.equal(state[k], v), k
    fresh = build_encoder("small").state_dict()
    assert {k: v.shape for k, v in fresh.items()} == {k: v.shape for k, v in state.items()}
    out = model(torch.zeros(1, 6, 50, 64), torch.zeros(1, 50, 64))
    assert out[0].shape == (1, 10, C, 3) and out[1].shape == (1, 10, C) and out[2].shape == (1, 10, C)


def test_a_one_track_model_widened_answers_alike_on_every_track():
    torch.manual_seed(0)
    one = build_encoder("tiny").eval()
    wide = with_tracks(one, 3).eval()
    sp, se = torch.randn(1, 6, 50, 64), torch.randn(1, 50, 64)
    with torch.no_grad():
        a, b = one(sp, se), wide(sp, se)
    assert b[0].shape == (1, 10, 3 * C, 3) and b[2].shape == (1, 10, C)
    for k in range(3):
        torch.testing.assert_close(b[0][:, :, k * C:(k + 1) * C], a[0], atol=1e-5, rtol=0)
    with pytest.raises(BinauraError, match="cannot become"):
        with_tracks(wide, 2)


# --- targets --------------------------------------------------------------------------------

def test_two_dogs_fill_two_dog_slots_in_onset_order():
    feat = FeatureConfig()
    t = output_frame_times_s(49, 5, feat)
    acc, logd, act = seld_targets(_two_dogs(), 49, 5, feat, LABELS, (-1.6, 3.0), tracks=2)
    assert acc.shape == (49, 2 * C, 3) and act.shape == (49, 2 * C)
    first, second = DOG, C + DOG  # track 0: the earlier dog (on the right), track 1: the later one
    assert act[:, first].tolist() == ((t >= 0.5) & (t < 3.0)).tolist()
    assert act[:, second].tolist() == ((t >= 1.0) & (t < 4.0)).tolist()
    assert np.allclose(acc[act[:, first], first], sph_to_cart(90.0, 0.0), atol=1e-6)
    assert np.allclose(acc[act[:, second], second], sph_to_cart(-90.0, 0.0), atol=1e-6)
    assert np.allclose(logd[act[:, first], first], math.log(1.5))
    siren = LABELS.index("siren")
    assert act[:, siren].all() and not act[:, C + siren].any()  # one siren: track 0 only
    # a third dog finds no track and is left out; with one track the class holds one direction
    _, _, act3 = seld_targets(_two_dogs(third=True), 49, 5, feat, LABELS, (-1.6, 3.0), tracks=2)
    assert act3[:, [first, second]].tolist() == act[:, [first, second]].tolist()
    acc1, _, act1 = seld_targets(_two_dogs(), 49, 5, feat, LABELS, (-1.6, 3.0))
    assert acc1.shape == (49, C, 3) and act1[:, DOG].tolist() == ((t >= 0.5) & (t < 4.0)).tolist()


# --- the loss -------------------------------------------------------------------------------

def _old_seld_loss(model_out, accdoa_t, logd_t, active_t, cfg, polar_ok=None):
    """seld_loss as it was before multi-track outputs (copied verbatim): the reference."""
    accdoa, logd, class_logits, _, _, activity_logits, sin_lat, polar_logits = model_out
    w = active_t.float()
    n_active = w.sum().clamp_min(1.0)
    l_act = nn.functional.binary_cross_entropy_with_logits(activity_logits, w)
    l_lat = ((sin_lat - accdoa_t[..., 1]).pow(2) * w).sum() / n_active
    k = polar_logits.shape[-1]
    polar_t = torch.atan2(accdoa_t[..., 2], accdoa_t[..., 0])
    centres = torch.arange(k, device=polar_t.device) * (2 * math.pi / k)
    d = torch.remainder(centres - polar_t.unsqueeze(-1) + math.pi, 2 * math.pi) - math.pi
    soft = torch.exp(-0.5 * (d / (cfg.polar_smoothing_bins * 2 * math.pi / k)).pow(2))
    soft = soft / soft.sum(-1, keepdim=True)
    ce = -(soft * torch.log_softmax(polar_logits, dim=-1)).sum(-1)
    wp = w * (accdoa_t[..., 0].pow(2) + accdoa_t[..., 2].pow(2))
    if polar_ok is not None:
        wp = wp * polar_ok.to(wp.dtype)[:, None, None]
    l_pol = (ce * wp).sum() / wp.sum().clamp_min(1.0)
    l_dist = ((logd - logd_t).pow(2) * w).sum() / n_active
    l_sem = nn.functional.binary_cross_entropy_with_logits(class_logits, w)
    with torch.no_grad():
        cos = (accdoa / accdoa.norm(dim=-1, keepdim=True).clamp_min(1e-6) * accdoa_t).sum(-1).clamp(-1, 1)
        angle = (torch.rad2deg(torch.acos(cos)) * w).sum() / n_active
    total = (cfg.w_activity * l_act + cfg.w_lateral * l_lat + cfg.w_polar * l_pol + cfg.w_distance * l_dist
             + cfg.w_semantic * l_sem)
    return {"loss": total, "activity": l_act, "lateral": l_lat, "polar": l_pol, "distance": l_dist,
            "semantic": l_sem, "frame_angle_deg": angle}


T_OUT = 30  # output frames (3 s) of the random clips the loss tests score


def _outputs(tracks: int, seed: int = 0, batch: int = 2):
    torch.manual_seed(seed)
    model = build_encoder("tiny", tracks).eval()
    with torch.no_grad():
        return model(torch.randn(batch, 6, 5 * T_OUT, 64), torch.randn(batch, 5 * T_OUT, 64), training_outputs=True)


def _targets(tracks: int, batch: int = 2, siren: bool = True):
    feat = FeatureConfig()
    rows = [seld_targets(_two_dogs(siren=siren), T_OUT, 5, feat, LABELS, (-1.6, 3.0), tracks) for _ in range(batch)]
    return tuple(torch.from_numpy(np.stack(x)) for x in zip(*rows, strict=True))


def test_one_track_loss_is_the_old_formula_exactly():
    out = _outputs(1)
    rng = np.random.default_rng(1)
    act = torch.from_numpy(rng.random((2, T_OUT, C)) < 0.3)
    v = rng.standard_normal((2, T_OUT, C, 3))
    acc = torch.from_numpy((v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)) * act[..., None]
    logd = torch.from_numpy(rng.uniform(-1, 2, (2, T_OUT, C)).astype(np.float32)) * act
    cfg = EncoderTrainConfig()
    ok = torch.tensor([True, False])
    new, old = seld_loss(out, acc, logd, act, cfg, polar_ok=ok), _old_seld_loss(out, acc, logd, act, cfg, ok)
    assert new.keys() == old.keys()
    for k in new:
        assert torch.equal(new[k], old[k]), k


def _fixed_order(monkeypatch, out, targets, cfg):
    """The loss with the targets' tracks taken as they are (no permutation search)."""
    with monkeypatch.context() as m:
        m.setattr(recipe, "pit_targets", lambda o, a, d, act, c, ok=None: (a, d, act))
        return seld_loss(out, *targets, cfg)


def _swap_dog_tracks(targets):
    order = torch.arange(2).repeat(targets[0].shape[0], C, 1)  # (B, C, N): identity ...
    order[:, DOG] = torch.tensor([1, 0])  # ... but the two dogs' tracks the other way round
    return tuple(reorder_tracks(x, order, C) for x in targets)


def test_pit_loss_is_blind_to_which_dog_is_on_which_track(monkeypatch):
    out, targets, cfg = _outputs(2), _targets(2), EncoderTrainConfig()
    swapped = _swap_dog_tracks(targets)
    assert not torch.equal(swapped[2], targets[2])  # the swap moved the dogs
    pit, pit_swapped = seld_loss(out, *targets, cfg), seld_loss(out, *swapped, cfg)
    torch.testing.assert_close(pit["loss"], pit_swapped["loss"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(pit["frame_angle_deg"], pit_swapped["frame_angle_deg"], rtol=1e-5, atol=1e-4)
    fixed, fixed_swapped = (_fixed_order(monkeypatch, out, t, cfg)["loss"] for t in (targets, swapped))
    assert float(fixed) != pytest.approx(float(fixed_swapped), rel=1e-6)  # the order matters to a fixed loss
    assert float(pit["loss"]) <= float(fixed) + 1e-6 and float(pit["loss"]) <= float(fixed_swapped) + 1e-6
    # the semantic branch learns the class as present when any of its tracks is
    assert float(pit["semantic"]) == pytest.approx(float(nn.functional.binary_cross_entropy_with_logits(
        out[2], targets[2].reshape(2, T_OUT, 2, C).any(2).float())))


def test_pit_loss_is_the_better_of_the_two_orders_of_one_clips_dogs(monkeypatch):
    # one clip, only the two dogs: every other class's tracks are empty, so permuting them
    # changes nothing, and the dogs' two orders are all there is to choose from
    out, targets, cfg = _outputs(2, seed=5, batch=1), _targets(2, batch=1, siren=False), EncoderTrainConfig()
    fixed, fixed_swapped = (float(_fixed_order(monkeypatch, out, t, cfg)["loss"])
                            for t in (targets, _swap_dog_tracks(targets)))
    assert float(seld_loss(out, *targets, cfg)["loss"]) == pytest.approx(min(fixed, fixed_swapped), rel=1e-6)


def test_pit_gradient_reaches_the_model():
    torch.manual_seed(0)
    model = build_encoder("tiny", 2)
    out = model(torch.randn(2, 6, 5 * T_OUT, 64), torch.randn(2, 5 * T_OUT, 64), training_outputs=True)
    seld_loss(out, *_targets(2), EncoderTrainConfig())["loss"].backward()
    assert model.activity_head.weight.grad.abs().sum() > 0


# --- the feature cache and a short training run ---------------------------------------------

def test_a_cache_of_another_track_count_is_refused_by_name(cache):
    assert cache.tracks == 1  # built before it was recorded, or for one track: one
    two = dataclasses.replace(BUILDERS["tiny"](), tracks=2).validate()
    with pytest.raises(BinauraError, match=r"1 track\(s\) per class, the model 2"):
        FeatureCache(cache.path, two)
    FeatureCache(cache.path, BUILDERS["tiny"]())  # the same track count is fine
    assert default_cache_dir("d", two).name == "features-tiny-tracks2"
    assert default_cache_dir("d", BUILDERS["tiny"]()).name == "features-tiny"


def test_a_tiny_two_track_encoder_trains_on_scenes_with_two_dogs(cache, tmp_path):
    synth = SynthConfig(duration_s=1.0, event_duration_s=(0.6, 1.0), min_sources=2, max_sources=2,
                        p_reverberant=0.0, heads=("kemar-mit",), p_same_class=1.0).validate()
    build_dataset(tmp_path / "ds", synth, 6, seed=3, workers=1, with_qa=False, progress=False)
    model_cfg = dataclasses.replace(BUILDERS["tiny"](), tracks=2).validate()
    build_cache(tmp_path / "ds", tmp_path / "cache", model_cfg, workers=1, progress=False)
    c2 = FeatureCache(tmp_path / "cache", model_cfg)
    assert c2.tracks == 2 and c2.active.shape[-1] == 2 * C
    assert c2.active[:, :, C:].any()  # the second track of a repeated class is used
    cfg = EncoderTrainConfig(size="tiny", tracks=2, steps=2, batch_size=2, eval_every=2, val_clips=2, threads=1)
    best = train_encoder(c2.path, tmp_path / "run", cfg, progress=False)
    model, ck = load_checkpoint(best)
    assert model.cfg.tracks == 2 and ck["lineage"][-1]["tracks"] == 2 and "decode" in ck
    # a one-track run's checkpoint is widened by --init; the one-track cache is refused
    one = train_encoder(cache.path, tmp_path / "one",
                        EncoderTrainConfig(size="tiny", steps=1, batch_size=2, eval_every=1, val_clips=0, threads=1),
                        progress=False)
    tuned = train_encoder(c2.path, tmp_path / "wide", dataclasses.replace(cfg, steps=1, val_clips=0),
                          init=str(one), progress=False)
    assert load_checkpoint(tuned)[0].cfg.tracks == 2
    with pytest.raises(BinauraError, match="track"):
        train_encoder(cache.path, tmp_path / "bad", dataclasses.replace(cfg, steps=1, val_clips=0), progress=False)
