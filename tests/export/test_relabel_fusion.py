"""The learned fusion of the encoder's class evidence and YAMNet's hearing (export.yamnet_fusion,
fitted by export.relabel_fusion): the evidence is a class's activity on the source's own frames;
a fit learns which of the two to trust where each is the informative one; the saved rule gives
the same labels after loading and refuses files that are not one; in the localizer only labels
change, never a direction."""

from __future__ import annotations

import numpy as np
import pytest

from agent.core.errors import BinauraError
from agent.core.geometry import sph_to_cart
from agent.core.labels import LABELS
from agent.core.tracks import slot_labels
from export.relabel_fusion import fit
from export.yamnet_fusion import YamnetFusion, class_evidence, features

C = len(LABELS)


def test_evidence_is_each_class_activity_on_the_sources_frames_the_stronger_track_per_frame():
    t = 10
    slots = slot_labels(LABELS, 2)  # track-major: slot = track * C + class
    accdoa = np.zeros((t, 2 * C, 3))
    dog, bird = LABELS.index("dog"), LABELS.index("bird")
    accdoa[:, dog] = 0.8 * sph_to_cart(30.0, 0.0)
    accdoa[5:, C + dog] = 0.95 * sph_to_cart(-60.0, 0.0)  # a second dog, louder, in the second half
    accdoa[:3, bird] = 0.6 * sph_to_cart(90.0, 0.0)
    active = np.zeros(t, bool)
    active[:5] = True
    ev = class_evidence(accdoa, slots, LABELS, active)
    assert ev[dog] == pytest.approx(0.8) and ev[bird] == pytest.approx(0.6 * 3 / 5)
    active[:] = True
    assert class_evidence(accdoa, slots, LABELS, active)[dog] == pytest.approx((5 * 0.8 + 5 * 0.95) / 10)
    assert class_evidence(accdoa, slots, (*LABELS, "whale"), active)[-1] == 0.0  # no slot carries it
    with pytest.raises(BinauraError, match="no active frame"):
        class_evidence(accdoa, slots, LABELS, np.zeros(t, bool))
    with pytest.raises(BinauraError, match="expected accdoa"):
        class_evidence(accdoa, LABELS, LABELS, active)


def _sources(n: int, rng: np.random.Generator):
    """Half "synthetic" sources (the encoder sure of the truth, YAMNet's scores flat) and half
    "real" ones (the encoder leaning weakly to a wrong class, YAMNet sure of the truth)."""
    truth = rng.integers(0, C, n)
    real = np.arange(n) % 2 == 1
    wrong = (truth + rng.integers(1, C, n)) % C
    evidence = np.where(real[:, None], rng.uniform(0.1, 0.2, (n, C)), rng.uniform(0.05, 0.15, (n, C)))
    hearing = np.where(real[:, None], rng.uniform(0.05, 0.15, (n, C)), rng.uniform(0.10, 0.15, (n, C)))
    evidence[~real, truth[~real]] = 0.95
    evidence[real, wrong[real]] = 0.3
    hearing[real, truth[real]] = 0.8
    return np.argmax(evidence, axis=1), evidence, hearing, truth, real


def test_a_fit_learns_to_trust_the_encoder_on_its_sounds_and_yamnet_on_real_ones():
    rng = np.random.default_rng(0)
    fusion = fit(*_sources(1200, rng)[:4], "label_scores", 1e-3)
    own, evidence, hearing, truth, real = _sources(600, rng)
    got = np.argmax(fusion.probabilities(own, evidence, hearing), axis=1)
    encoder_only, yamnet_only = np.argmax(evidence, 1), np.argmax(hearing, 1)
    for part in (real, ~real):
        assert np.mean(got[part] == truth[part]) > 0.97
    assert np.mean(encoder_only[real] == truth[real]) < 0.1  # each alone is wrong on one half
    assert np.mean(yamnet_only[~real] == truth[~real]) < 0.3
    p = fusion.probabilities(own, evidence, hearing)
    assert np.allclose(p.sum(1), 1.0) and np.all(p >= 0)


def test_a_saved_fusion_loads_to_the_same_labels_and_other_files_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    own, evidence, hearing, truth, _ = _sources(300, rng)
    fusion = fit(own, evidence, hearing, truth, "label_scores", 1e-2)
    names = [LABELS[i] for i in own]
    path = tmp_path / "f.npz"
    fusion.save(path)
    back = YamnetFusion.load(path)
    assert back.labels == LABELS and back.kind == "label_scores" and back.meta["fit_sources"] == 300
    assert back.labels_of(names, evidence, hearing) == fusion.labels_of(names, evidence, hearing)
    with pytest.raises(BinauraError, match="whale"):
        fusion.labels_of(["whale", *names[1:]], evidence, hearing)
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]  # no temp file left behind
    np.savez(tmp_path / "other.npz", format=np.array("something-else"))
    with pytest.raises(BinauraError, match="expected a YAMNet fusion"):
        YamnetFusion.load(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BinauraError, match="not a readable YAMNet fusion"):
        YamnetFusion.load(tmp_path / "pickled.npz")
    with pytest.raises(BinauraError, match="expected weights"):
        YamnetFusion(LABELS, "scores", fusion.mean, fusion.scale, fusion.weights, fusion.bias, {})
    with pytest.raises(BinauraError, match="unknown input"):
        features(own, evidence, hearing, "mfcc")


def test_recording_halves_are_stable_and_a_fit_and_its_score_never_share_one():
    from export.relabel_fusion import keep_pairs, recording_half

    ids = np.array([f"pkg/{i:04d}" for i in range(400)] + [""])
    half = recording_half(ids)
    assert half[-1] == -1 and set(half[:-1]) == {0, 1} and 150 < (half == 0).sum() < 250
    assert np.array_equal(recording_half(ids), half)  # the same recording is in the same half every time
    cache = {"pair_row": np.arange(len(ids)), "pair_true": np.zeros(len(ids), int), "pair_real": ids}
    fit_side, score_side = keep_pairs(cache, (0,)), keep_pairs(cache, (1,))
    assert not set(fit_side["pair_real"]) & set(score_side["pair_real"]) - {""}
    assert "" in set(fit_side["pair_real"]) and "" in set(score_side["pair_real"])  # synthetic sources: both
    assert len(fit_side["pair_row"]) + len(score_side["pair_row"]) == len(ids) + 1
