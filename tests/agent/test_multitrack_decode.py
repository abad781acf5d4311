"""Decoding a multi-track encoder's outputs (agent.core.tracks, agent.core.seld): two slots of
one class are two sources when they point apart, one when they point alike."""

from types import SimpleNamespace

import numpy as np
import pytest

from agent.core.errors import BinauraError
from agent.core.geometry import sph_to_cart
from agent.core.labels import LABELS
from agent.core.seld import (
    DecodeConfig,
    active_spans,
    decode_clip,
    decode_slots,
    frame_sources,
    heard_sources,
    seld_vector,
    slot_spans,
)
from agent.core.tracks import align_tracks, check_tracks, slot_labels, tracks_of
from agent.localize.mirror import combine_mirror
from agent.track.tracker import detections_from_frames

C = len(LABELS)
DOG, SIREN = LABELS.index("dog"), LABELS.index("siren")
RATE_HZ = 10.0


def _frames(tracks: int, slots: list[tuple[int, float, float, float, int, int]], n: int = 40):
    """accdoa (n, tracks*C, 3), log_distance: each (slot, azimuth, activity, distance, first, end)."""
    acc = np.zeros((n, tracks * C, 3), np.float32)
    logd = np.zeros((n, tracks * C), np.float32)
    for slot, az, a, d, first, end in slots:
        acc[first:end, slot] = a * sph_to_cart(az, 0.0)
        logd[first:end, slot] = np.log(d)
    return acc, logd


def test_slot_labels_repeat_the_classes_per_track():
    assert slot_labels(("dog", "siren"), 3) == ("dog", "siren") * 3
    assert slot_labels(LABELS) == LABELS
    assert tracks_of(3 * C, C) == 3
    for bad in (0, 5, 2.0, "2"):
        with pytest.raises(BinauraError, match=r"1\.\.4"):
            check_tracks(bad)
    with pytest.raises(BinauraError, match="whole number of tracks"):
        tracks_of(C + 1, C)


def test_two_dogs_60_deg_apart_are_two_sources_and_10_deg_apart_one():
    labels = slot_labels(LABELS, 2)
    apart = _frames(2, [(DOG, 30.0, 0.9, 2.0, 0, 30), (C + DOG, -30.0, 0.7, 4.0, 5, 35)])
    found = decode_clip(*apart, labels, RATE_HZ)
    assert [s.label for s in found] == ["dog", "dog"]
    assert found[0].azimuth_deg == pytest.approx(30.0, abs=1e-3)  # the more active first
    assert found[1].azimuth_deg == pytest.approx(-30.0, abs=1e-3) and found[1].distance_m == pytest.approx(4.0)
    close = _frames(2, [(DOG, 5.0, 0.6, 2.0, 0, 30), (C + DOG, -5.0, 0.9, 4.0, 0, 30),
                        (SIREN, 120.0, 0.8, 1.0, 0, 20)])
    found = decode_slots(*close, labels, RATE_HZ)
    assert [(slot, s.label) for slot, s in found] == [(C + DOG, "dog"), (SIREN, "siren")]  # the more active dog
    assert found[0][1].azimuth_deg == pytest.approx(-5.0, abs=1e-3)
    # merge_deg decides: at 5 deg two dogs 10 deg apart stay two
    assert len(decode_clip(*close, labels, RATE_HZ, DecodeConfig(merge_deg=5.0))) == 3


def test_one_track_decoding_is_unchanged_and_slot_labels_are_checked():
    acc, logd = _frames(1, [(DOG, 30.0, 0.9, 2.0, 0, 30), (SIREN, -150.0, 0.8, 3.0, 10, 20)])
    found = decode_clip(acc, logd, LABELS, RATE_HZ)
    assert [s.label for s in found] == ["dog", "siren"]
    # merge_deg never joins different classes, however close
    acc, logd = _frames(1, [(DOG, 30.0, 0.9, 2.0, 0, 30), (SIREN, 31.0, 0.8, 3.0, 0, 30)])
    assert len(decode_clip(acc, logd, LABELS, RATE_HZ)) == 2
    acc2, logd2 = _frames(2, [(DOG, 30.0, 0.9, 2.0, 0, 30)])
    with pytest.raises(BinauraError, match="slot labels"):
        decode_clip(acc2, logd2, LABELS, RATE_HZ)  # the class labels of a two-track output


def test_heard_sources_take_each_dogs_own_time_span():
    labels = slot_labels(LABELS, 2)
    acc, logd = _frames(2, [(DOG, 60.0, 0.9, 2.0, 0, 20), (C + DOG, -60.0, 0.8, 3.0, 15, 40)])
    heard = heard_sources(acc, logd, labels, RATE_HZ)
    assert sorted((h.label, round(h.azimuth_deg), h.onset_s, h.offset_s) for h in heard) == [
        ("dog", -60, 1.5, 4.0), ("dog", 60, 0.0, 2.0)]
    assert slot_spans(acc, RATE_HZ) == {DOG: (0.0, 2.0), C + DOG: (1.5, 4.0)}
    assert active_spans(acc, labels, RATE_HZ) == {"dog": (0.0, 4.0)}  # by label: the slots' union


def test_frame_sources_and_detections_merge_one_dog_on_two_tracks_per_frame():
    labels = slot_labels(LABELS, 2)
    acc, logd = _frames(2, [(DOG, 10.0, 0.9, 2.0, 0, 10), (C + DOG, 20.0, 0.6, 2.0, 0, 10),
                            (C + DOG, -80.0, 0.6, 2.0, 10, 20), (DOG, 80.0, 0.9, 2.0, 10, 20)], n=20)
    rows = frame_sources(acc, logd, labels)
    assert [len(r) for r in rows] == [1] * 10 + [2] * 10
    assert rows[0][0].azimuth_deg == pytest.approx(10.0, abs=1e-3)
    dets = detections_from_frames(SimpleNamespace(accdoa=acc, log_distance=logd, start=0), labels, RATE_HZ)
    assert [len(f.detections) for f in dets] == [1] * 10 + [2] * 10
    assert dets[0].detections[0].confidence == pytest.approx(0.9)


def test_seld_vector_gives_every_slot_its_class_logit():
    acc, logd = _frames(3, [(2 * C + DOG, 45.0, 0.8, 2.0, 0, 5)], n=5)
    logits = np.random.default_rng(0).standard_normal((5, C)).astype(np.float32)
    v = seld_vector(acc, logd, logits).reshape(5, 3 * C, 5)
    for k in range(3):
        np.testing.assert_array_equal(v[:, k * C:(k + 1) * C, 4], logits)
    np.testing.assert_array_equal(v[:, :, :3], acc)
    assert seld_vector(acc[:, :C], logd[:, :C], logits).shape == (5, C * 5)  # one track: as before


def test_mirror_pass_with_the_dogs_on_swapped_tracks_is_aligned_before_averaging():
    # the plain pass hears dog A (left) on track 0 and dog B (right) on track 1; the mirror pass,
    # reflected back, hears them the other way round: averaged slot by slot unaligned, each slot
    # would mix the two dogs into a vector pointing between them
    plain, d_plain = _frames(2, [(DOG, 60.0, 0.9, 2.0, 0, 10), (C + DOG, -60.0, 0.8, 4.0, 0, 10)], n=10)
    swapped, d_swapped = _frames(2, [(C + DOG, 58.0, 0.9, 2.2, 0, 10), (DOG, -62.0, 0.8, 3.8, 0, 10)], n=10)
    mirror_raw = swapped * np.float32([1.0, -1.0, 1.0])  # as the network gives it, before reflect_back
    acc, logd = combine_mirror(plain, d_plain, mirror_raw, d_swapped, "mean", tracks=2)
    found = decode_clip(acc, logd, slot_labels(LABELS, 2), RATE_HZ)
    assert sorted(round(s.azimuth_deg) for s in found) == [-61, 59]
    by_az = {round(s.azimuth_deg): s for s in found}
    assert by_az[59].distance_m == pytest.approx(np.sqrt(2.0 * 2.2), rel=1e-4)  # mean of the log-distances
    # one track: combine_mirror is as before (no alignment to do)
    one, d_one = plain[:, :C], d_plain[:, :C]
    a1, _ = combine_mirror(one, d_one, one * np.float32([1.0, -1.0, 1.0]), d_one, "mean")
    np.testing.assert_allclose(a1, one)


def test_align_tracks_undoes_any_order_of_three_tracks():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((6, 3 * 4, 3)).astype(np.float32)
    dist = rng.standard_normal((6, 3 * 4)).astype(np.float32)
    perm = [2, 0, 1]
    other = ref.reshape(6, 3, 4, 3)[:, perm].reshape(6, 12, 3)
    other_d = dist.reshape(6, 3, 4)[:, perm].reshape(6, 12)
    a, d = align_tracks(ref, other + 1e-3, 3, other_d)
    np.testing.assert_allclose(a, ref + 1e-3, atol=1e-6)
    np.testing.assert_array_equal(d, dist)
