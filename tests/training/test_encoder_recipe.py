"""Training-loop pieces: GPU-resident batches, augmentation and the time budget."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from agent.core.dataset import read_dataset
from agent.core.features import FeatureConfig, compute_features, mel_band_centres_hz
from training.models.config import BUILDERS
from training.recipes.encoder import EncoderTrainConfig, _fit_steps, evaluate, seld_loss, seld_score
from training.recipes.encoder_batches import Batches, common_mode_eq, polar_mask, validation_indices
from training.recipes.encoder_data import FeatureCache, build_cache
from training.synth.build import build_dataset
from training.synth.config import SynthConfig


def test_device_resident_batches_equal_host_batches(cache):
    """The GPU path (whole cache on the device, augmentation there) draws exactly the host's batches."""
    cfg = EncoderTrainConfig(batch_size=4, p_mirror=0.5, p_band_mask=1.0, p_eq=0.5)
    idx = np.arange(len(cache))
    host = Batches(cache, idx, cfg, np.random.default_rng(7))
    resident = Batches(cache, idx, cfg, np.random.default_rng(7), resident=True)
    assert resident.resident is not None and host.resident is None
    for _ in range(3):
        for a, b in zip(host.sample(), resident.sample(), strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert torch.equal(a, b)


def test_band_mask_replaces_bands_by_their_clip_mean(cache):
    cfg = EncoderTrainConfig(batch_size=2, p_mirror=0.0, p_band_mask=1.0, max_band_mask=4)
    sp = Batches(cache, np.arange(len(cache)), cfg, np.random.default_rng(1)).sample()[0]
    flat = (sp[:, :5].std(dim=2) < 1e-6).all(dim=1)  # (B, F): bands constant over time in every channel
    per_clip = flat.sum(dim=1)
    assert ((per_clip >= 1) & (per_clip <= 4)).all()
    assert not (sp[:, 5].std(dim=1) < 1e-6).all()  # GCC lags are never masked


def test_time_budget_fits_steps_and_validations():
    cfg = EncoderTrainConfig(steps=100_000, eval_every=1000, time_budget_s=100.0)
    fit = _fit_steps(cfg, step=70, per_step=0.01, elapsed_s=10.0, eval_s=5.0)
    # 85 s left after one more validation, at 10 ms a step + 5 s per 1000 steps -> 5,666 steps
    assert fit.steps == 70 + 5666
    assert _fit_steps(dataclasses.replace(cfg, steps=500), 70, 0.01, 10.0, 5.0).steps == 500  # never more
    assert _fit_steps(cfg, 70, 0.01, 200.0, 5.0).steps == 71  # already over: stop after one step
    # a refit from a first fit made while the cores were busy: the steps grow again, up to the
    # user's cap and no further
    slow = _fit_steps(cfg, 70, 0.05, 10.0, 5.0)
    assert slow.steps < fit.steps
    again = _fit_steps(slow, 1000, 0.005, 30.0, 5.0, cap=cfg.steps)
    assert again.steps > slow.steps and again.steps == 1000 + int((100 - 30 - 5) / (0.005 + 5 / 1000))
    assert _fit_steps(slow, 1000, 0.005, 30.0, 5.0, cap=2000).steps == 2000


def test_seld_score_orders_validation_passes():
    perfect = {"angular_error_mean_deg": 0.0, "detection_f1": 1.0, "distance_er05": 0.0, "class_accuracy": 1.0}
    good = {"angular_error_mean_deg": 20.0, "detection_f1": 0.95, "distance_er05": 0.4, "class_accuracy": 0.9}
    worse = {**good, "angular_error_mean_deg": 40.0}
    assert seld_score(perfect) == 0.0
    assert 0 < seld_score(good) < seld_score(worse) < 1
    assert seld_score({}) == 1.0  # nothing decoded: the worst score


def test_seld_score_ranks_right_places_above_the_right_count_in_wrong_places():
    """Three sources: one model finds all three, classes and distances right, each 30 deg off;
    the other finds two of them in the right places and misses the third. The count-only F1
    (1 against 0.8) made the first score better; the DCASE detection_f1 counts its three
    detections as misses outside the 20 deg gate, and the second scores better."""
    from agent.core.scene import Scene, SourceEstimate, SourceLabel
    from training.eval.metrics import localization_metrics, match_clip

    truth = [("dog", 0.0), ("siren", 90.0), ("alarm", -120.0)]
    sc = Scene("s", "a.wav", 48000, 5.0, [SourceLabel(lab, az, 0.0, 2.0, 0.0, 1.0) for lab, az in truth],
               None, "kemar-mit")
    wrong_places = localization_metrics([match_clip(sc, [SourceEstimate(az + 30.0, 0.0, 2.0, lab)
                                                         for lab, az in truth])])
    right_places = localization_metrics([match_clip(sc, [SourceEstimate(az, 0.0, 2.0, lab)
                                                         for lab, az in truth[:2]])])
    assert seld_score(wrong_places) > seld_score(right_places)
    assert wrong_places["detection_f1"] == 0.0 and right_places["detection_f1"] == pytest.approx(0.8)


def test_fine_tuning_extends_the_lineage_and_resuming_keeps_it(cache, tmp_path):
    """A checkpoint lists every training stage behind its weights: a fine-tune appends its own
    entry to its init's, and a resumed run updates its entry instead of adding one."""
    from training.models.encoder import load_checkpoint
    from training.recipes.encoder import train_encoder

    cfg = EncoderTrainConfig(size="tiny", steps=2, batch_size=2, eval_every=2, val_clips=2, threads=1)
    first = train_encoder(cache.path, tmp_path / "a", cfg, progress=False)
    _, ck = load_checkpoint(first)
    assert len(ck["lineage"]) == 1 and ck["lineage"][0]["steps"] == 2
    assert "seed 4" in ck["lineage"][0]["data"] and "init" not in ck["lineage"][0]
    # the fields where the data departs from its preset are named, and only those
    assert "train preset (duration_s=1.0, event_duration_s=[0.5, 1.0], rt60_s=[0.2, 0.3])" in ck["lineage"][0]["data"]
    _, fin = load_checkpoint(tmp_path / "a" / "final.pt")
    assert fin["step"] == 2 and "decode" in fin and [s["steps"] for s in fin["lineage"]] == [2]
    tune = dataclasses.replace(cfg, lr=1e-4, no_polar_heads=("sphere",), w_distance=1.0)
    second = train_encoder(cache.path, tmp_path / "b", tune, init=str(first), progress=False)
    _, ck = load_checkpoint(second)
    assert [s["steps"] for s in ck["lineage"]] == [2, 2]
    assert ck["lineage"][1]["init"] == "best.pt" and ck["lineage"][1]["lr"] == 1e-4
    assert ck["lineage"][1]["no_polar_heads"] == ["sphere"]
    # a loss weight departing from the default is named; the first stage ran at the default
    assert ck["lineage"][1]["w_distance"] == 1.0 and "w_distance" not in ck["lineage"][0]
    # the fine-tune scores its init on its own validation clips first: the bar its passes must clear
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert hist[0]["init"] is True and hist[0]["step"] == 0
    assert not any(h.get("init") for h in hist[1:])
    init_model, _ = load_checkpoint(first)
    scenes = read_dataset(cache.meta["data"], check_audio=False).scenes
    again = evaluate(init_model, cache, validation_indices(len(cache), tune.val_clips), scenes, tune)
    assert hist[0]["val_loss"] == pytest.approx(again["val_loss"], rel=1e-5)
    assert hist[0]["seld_score"] == pytest.approx(seld_score(again))
    train_encoder(cache.path, tmp_path / "b", dataclasses.replace(tune, steps=4), resume=True, progress=False)
    _, ck = load_checkpoint(tmp_path / "b" / "last.pt")
    assert [s["steps"] for s in ck["lineage"]] == [2, 4] and ck["lineage"][1]["init"] == "best.pt"


def test_common_mode_eq_changes_both_ears_alike_and_no_interaural_cue(cache):
    """The same clips drawn with and without the EQ: both ears' log-mel move by one curve that is
    constant over time (and the mono mix by the same curve on its own grid); ILD, IPD and GCC-PHAT
    stay exactly as they were, so no direction cue changes."""
    plain = EncoderTrainConfig(batch_size=4, p_mirror=0.5, p_band_mask=1.0)
    sp0, se0, *_ = Batches(cache, np.arange(len(cache)), plain, np.random.default_rng(3)).sample()
    eq = dataclasses.replace(plain, p_eq=1.0, eq_db=6.0)
    sp1, se1, *_ = Batches(cache, np.arange(len(cache)), eq, np.random.default_rng(3)).sample()
    assert torch.equal(sp0[:, 2:], sp1[:, 2:])
    d_l, d_r, d_se = sp1[:, 0] - sp0[:, 0], sp1[:, 1] - sp0[:, 1], se1 - se0
    torch.testing.assert_close(d_l, d_r, atol=1e-4, rtol=0)
    assert float((d_l - d_l[:, :1]).abs().max()) < 1e-3  # the same gain on every frame
    assert float((d_se - d_se[:, :1]).abs().max()) < 1e-3
    assert float(d_l.abs().max()) > 0.5  # it did something
    assert float(d_l[:, 0].mean(dim=-1).abs().max()) < 1e-4  # zero mean over the bands: level kept
    # the mono mix's grid (50 Hz - 8 kHz) reads the spatial curve at its own frequencies
    fc = FeatureConfig.from_dict(cache.meta["features"])
    f_sp = mel_band_centres_hz(fc.n_mels, fc.fmin_hz, fc.fmax_hz)
    f_se = mel_band_centres_hz(fc.n_mels, fc.fmin_hz, fc.semantic_fmax_hz)
    for b in range(4):
        want = np.interp(np.log(f_se), np.log(f_sp), d_l[b, 0].numpy())
        assert np.abs(d_se[b, 0].numpy() - want).max() < 0.6  # linear interpolation of a smooth curve


def test_common_mode_eq_is_what_filtering_both_ears_does():
    """Filtering both ears of a recording with the curve (an FFT-domain gain) moves each log-mel band
    by the curve's value at the band's centre: the augmentation is a physical source/microphone EQ."""
    fc = FeatureConfig()
    rng = np.random.default_rng(0)
    n = fc.sample_rate_hz * 2
    audio = rng.standard_normal((2, n)).astype(np.float32) * 0.05
    audio[1] = np.roll(audio[1], 12) * 0.7  # some interaural delay and level
    f_sp = mel_band_centres_hz(fc.n_mels, fc.fmin_hz, fc.fmax_hz)
    freqs = np.fft.rfftfreq(n, 1.0 / fc.sample_rate_hz)
    g_sp, g_fft = common_mode_eq(np.random.default_rng(5), 1, 6.0, f_sp, np.clip(freqs, f_sp[0], f_sp[-1]))
    filtered = np.fft.irfft(np.fft.rfft(audio, axis=-1) * 10 ** (g_fft / 20), n=n, axis=-1).astype(np.float32)
    sp0, _ = compute_features(audio, fc.sample_rate_hz, fc)
    sp1, _ = compute_features(filtered, fc.sample_rate_hz, fc)
    moved = (sp1[0] - sp0[0]).mean(axis=0)  # (bands,), dB
    assert np.abs(moved - g_sp[0]).mean() < 0.05  # 0.006 dB measured
    assert np.abs(moved - g_sp[0]).max() < 0.3
    assert np.abs(sp1[2] - sp0[2]).mean() < 0.05  # ILD unchanged (up to within-band weighting)


def test_the_command_line_runs_unchanged_under_accelerate_launch_with_two_processes(cache, tmp_path):
    """How a GPU cluster scales the encoder out: the same command under `accelerate launch`, here two
    CPU processes (gloo). Rank 0 builds the missing feature cache while rank 1 waits, then both train
    in DistributedDataParallel; rank 0 alone validates and writes the checkpoints."""
    from tests.training.launch import accelerate_launch
    from training.models.encoder import load_checkpoint

    run = accelerate_launch("export.cli", [
        "train", "encoder", "--data", cache.meta["data"], "--cache", str(tmp_path / "features"),
        "--out", str(tmp_path / "run"), "--size", "tiny", "--steps", "3", "--batch-size", "2", "--eval-every", "2",
        "--val-clips", "2", "--threads", "1", "--workers", "1", "--quiet"])
    assert run.returncode == 0, run.stderr[-3000:]
    # one cache, whole (the one a plain process builds), one report, no half-written file
    built = FeatureCache(tmp_path / "features")
    # the same features (up to the last float16 bit: threaded FFTs may round otherwise) and labels
    assert np.allclose(built.spatial.astype(np.float32), cache.spatial.astype(np.float32), rtol=2e-3, atol=2e-3)
    assert np.array_equal(built.active, cache.active)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "run"]
    assert run.stdout.count("best checkpoint -> ") == 1 and run.stdout.count("x 2 processes") == 1
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]
    model, best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["world_size"] == 2 and best["lineage"][-1]["world_size"] == 2 and "decode" in best
    _, last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 3 and last["world_size"] == 2 and len(last["rank_streams"]) == 1
    assert last["rank_streams"][0]["rng"] != last["rng"]  # rank 1 drew its own batches
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["step"] for h in hist if "val_loss" in h] == [2, 3] and any("loss" in h for h in hist)
    sp, se = (torch.from_numpy(a) for a in cache.batch(np.arange(2))[:2])
    assert torch.isfinite(model(sp, se)[0]).all()


def _grad_worker(rank: int, port: int, cache_path: str, out: str) -> None:
    """One of two ranks: gradients of the tiny encoder on this rank's half of four clips, through
    DistributedDataParallel (the encoder's loop) and through Dist.average_gradients (GRPO's)."""
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from training.recipes.distributed import init_distributed

    dist = init_distributed("cpu")
    model, batch = _grad_model_and_batch(cache_path)
    half = [t[2 * rank:2 * rank + 2] for t in batch]
    ddp, got = dist.wrap(model), {}
    for name, cfg in _GRAD_LOSSES.items():
        model.zero_grad(set_to_none=True)
        seld_loss(ddp(*half[:2], training_outputs=True), *half[2:5], cfg, polar_ok=half[5])["loss"].backward()
        got[f"ddp_{name}"] = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=True)
        seld_loss(model(*half[:2], training_outputs=True), *half[2:5], cfg, polar_ok=half[5])["loss"].backward()
        dist.average_gradients(model.parameters())
        got[f"avg_{name}"] = [p.grad.clone() for p in model.parameters()]
    torch.save(got, f"{out}/rank{rank}.pt")
    dist.barrier()


#: the whole loss; and its two terms that are plain means over a batch's elements, whose gradient
#: on the union of two equal halves is the mean of the halves' (the others divide by the batch's
#: active frames, which DDP, like any data-parallel run, counts per rank)
_GRAD_LOSSES = {"full": EncoderTrainConfig(),
                "means": EncoderTrainConfig(w_lateral=0.0, w_polar=0.0, w_distance=0.0)}


def _grad_model_and_batch(cache_path: str):
    """The tiny encoder (seed 0) in eval mode (BatchNorm's running statistics, no dropout: each
    clip's output does not depend on the rest of its batch) and four clips with their targets."""
    from training.models.encoder import build_encoder

    cache = FeatureCache(cache_path)
    torch.manual_seed(0)
    model = build_encoder("tiny")
    model.set_normalisation(*(np.array(cache.meta[k]) for k in ("spatial_mean", "spatial_std", "semantic_mean",
                                                                  "semantic_std")))
    model.eval()
    pick = np.arange(4)
    polar_ok = torch.ones(4, dtype=torch.bool)
    return model, [*(torch.from_numpy(a) for a in cache.batch(pick)), polar_ok]


def test_two_ranks_average_the_gradients_of_their_halves(cache, tmp_path):
    """Both ways the recipes average gradients over ranks (DDP for the encoder, average_gradients
    for GRPO) give every rank the mean of the two halves' one-process gradients; for a loss that is
    a mean over the batch that is the one-process gradient on the union of the two halves."""
    import torch.multiprocessing as mp

    from tests.training.launch import free_port

    mp.start_processes(_grad_worker, args=(free_port(), str(cache.path), str(tmp_path)), nprocs=2,
                       start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    model, batch = _grad_model_and_batch(str(cache.path))

    def grads(rows, cfg):
        model.zero_grad(set_to_none=True)
        part = [t[rows] for t in batch]
        seld_loss(model(*part[:2], training_outputs=True), *part[2:5], cfg, polar_ok=part[5])["loss"].backward()
        return [p.grad.clone() for p in model.parameters()]

    for name, cfg in _GRAD_LOSSES.items():
        halves = [grads(slice(0, 2), cfg), grads(slice(2, 4), cfg)]
        want = [(a + b) / 2 for a, b in zip(*halves)]
        assert max(float(w.abs().max()) for w in want) > 1e-3
        if name == "means":
            for u, w in zip(grads(slice(0, 4), cfg), want):
                torch.testing.assert_close(u, w, atol=1e-6, rtol=1e-4)
        for r in ranks:
            for how in ("ddp", "avg"):
                for g, w in zip(r[f"{how}_{name}"], want):
                    torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-4)


def test_band_limited_and_first_order_scenes_train_no_polar_head(tmp_path):
    cfg = SynthConfig(duration_s=0.5, event_duration_s=(0.3, 0.5), heads=("kemar-mit",), max_sources=1,
                      p_reverberant=0.0, p_band_limited=0.5, band_limited_rates_hz=(16_000, 24_000),
                      p_ambisonic=0.4, ambisonic_orders=(1, 2)).validate()
    build_dataset(tmp_path / "ds", cfg, 8, seed=2, workers=1, with_qa=False, progress=False)
    build_cache(tmp_path / "ds", tmp_path / "cache", BUILDERS["tiny"](), workers=1, progress=False)
    scenes = read_dataset(tmp_path / "ds").scenes
    mask = polar_mask(FeatureCache(tmp_path / "cache"), EncoderTrainConfig(no_polar_heads=("sphere",)))
    limited = [s.extra.get("device", {}).get("rate_hz", 48_000) < 32_000 for s in scenes]
    first = [s.extra.get("ambisonic_order") == 1 for s in scenes]
    assert mask.tolist() == [not (a or b) for a, b in zip(limited, first, strict=True)]
    assert any(limited) and any(first) and mask.any()  # the draw made every kind
