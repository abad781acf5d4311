"""Steering toward a talker: the physics of each method, and (slow) the word-error
measurement with an interfering talker that chose `transcribe_span`'s default."""

from __future__ import annotations

import re

import numpy as np
import pytest

from agent.core.audio import HEAD_RADIUS_M, SPEED_OF_SOUND_M_S
from agent.voice.steer import STEER_METHODS, steer, woodworth_itd_s
from tests.agent.test_voice_vad import RATE_HZ, espeak, place


def test_woodworth_itd_signs_and_symmetry():
    full = HEAD_RADIUS_M / SPEED_OF_SOUND_M_S * (np.pi / 2 + 1)
    assert woodworth_itd_s(90.0) == pytest.approx(full)  # left ear leads for a source on the left
    assert woodworth_itd_s(-90.0) == pytest.approx(-full)
    assert woodworth_itd_s(0.0) == pytest.approx(0.0, abs=1e-12)
    assert woodworth_itd_s(30.0) == pytest.approx(woodworth_itd_s(150.0))  # front-back cone
    assert woodworth_itd_s(90.0, 60.0) < woodworth_itd_s(90.0)  # elevation shrinks the lateral angle


def test_methods_on_a_single_lateral_source():
    rng = np.random.default_rng(0)
    src = (0.1 * rng.standard_normal(RATE_HZ)).astype(np.float32)
    lr = place(src, 60.0)
    mix = steer(lr, RATE_HZ, 60.0, "mix")
    np.testing.assert_allclose(mix, steer(lr, RATE_HZ, None, "delay_sum"), atol=1e-7)
    left = steer(lr, RATE_HZ, 60.0, "better_ear")
    assert np.sqrt(np.mean(left ** 2)) > np.sqrt(np.mean(mix ** 2))  # the near (left) ear is louder
    # Aligning the ITD makes the two ears add coherently: more power than the unaligned mix.
    das = steer(lr, RATE_HZ, 60.0, "delay_sum")
    assert np.mean(das ** 2) > 1.2 * np.mean(mix ** 2)
    # The mask keeps a source at the steered direction and attenuates one on the other side.
    kept = steer(lr, RATE_HZ, 60.0, "ipd_mask")
    other = steer(place(src, -60.0), RATE_HZ, 60.0, "ipd_mask")
    assert np.mean(kept ** 2) > 4 * np.mean(other ** 2)
    assert all(steer(lr, RATE_HZ, 60.0, m).shape == (RATE_HZ // 3,) for m in STEER_METHODS)


def test_a_talker_ahead_gets_the_plain_mix():
    lr = place(np.ones(4800, np.float32), 0.0)
    for method in STEER_METHODS:
        np.testing.assert_allclose(steer(lr, RATE_HZ, 5.0, method), steer(lr, RATE_HZ, None), atol=1e-7)
    with pytest.raises(ValueError, match="allowed"):
        steer(lr, RATE_HZ, 60.0, "beamform")


# Target and interfering sentences (Harvard sentences), and (target, interferer) azimuths.
TARGETS = ["the birch canoe slid on the smooth planks", "glue the sheet to the dark blue background",
           "it is easy to tell the depth of a well", "these days a chicken leg is a rare dish",
           "rice is often served in round bowls", "the juice of lemons makes fine punch",
           "the box was thrown beside the parked truck", "four hours of steady work faced us"]
INTERFERERS = ["a large size in stockings is hard to sell", "the boy was there when the sun rose",
               "a rod is used to catch pink salmon", "the source of the huge river is the clear spring",
               "kick the ball straight and follow through", "help the woman get back to her feet",
               "a pot of tea helps to pass the evening", "smoky fires lack flame and heat"]
POSITIONS_DEG = [(60, -60), (90, -30), (-45, 45), (30, -90), (120, -120), (-90, 60), (45, 135), (-60, -150)]


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance in words, reference length): WER's numerator and denominator."""
    def norm(s: str) -> list[str]:
        return re.sub(r"[^a-z' ]", " ", s.lower()).split()

    r, h = norm(ref), norm(hyp)
    d = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        prev, d[0] = d.copy(), i
        for j in range(1, len(h) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
    return int(d[len(h)]), len(r)


def test_word_errors():
    assert word_errors("the dog sat", "The dog sat.") == (0, 3)
    assert word_errors("the dog sat", "a dog sat down") == (2, 3)


@pytest.mark.slow
def test_steering_lowers_word_error_with_an_interfering_talker(kemar):
    """Two espeak-ng talkers (different voices) at equal level (0 dB SIR), KEMAR HRTFs,
    anechoic; WER of the target over 8 sentence pairs per method, and of the target alone (the
    ceiling: robotic espeak speech is hard for tiny.en). The default steering must beat the
    plain mix clearly; the table is printed (pytest -s -m slow)."""
    from scipy.signal import fftconvolve

    from agent.voice.spoken import DEFAULT_STEERING, default_transcriber, transcribe_span

    tr = default_transcriber()
    errors = dict.fromkeys((*STEER_METHODS, "alone"), 0)
    n_words = 0
    for target, interferer, (az_t, az_i) in zip(TARGETS, INTERFERERS, POSITIONS_DEG):
        st, si = espeak(target, voice="en-us+m1"), espeak(interferer, voice="en-gb+f2")
        n = max(st.size + 2400, si.size) + 2400
        st, si = np.pad(st, (2400, n - st.size - 2400)), np.pad(si, (0, n - si.size))
        si *= np.sqrt(np.mean(st ** 2) / np.mean(si ** 2))
        mix = sum(np.stack([fftconvolve(x, h)[:n] for h in kemar.hrir(az, 0.0)])
                  for x, az in ((st, az_t), (si, az_i))).astype(np.float32)
        # The ceiling: the target without the interferer, plain mix (espeak through tiny.en).
        alone = np.stack([fftconvolve(st, h)[:n] for h in kemar.hrir(az_t, 0.0)]).astype(np.float32)
        e, n_ref = word_errors(target, transcribe_span(alone, RATE_HZ, 0.0, n / RATE_HZ, az_t,
                                                       transcriber=tr, steering="mix", pad_s=0.0).text)
        errors["alone"] += e
        row = [f"alone={e / n_ref:.2f}"]
        for method in STEER_METHODS:
            span = transcribe_span(mix, RATE_HZ, 0.0, n / RATE_HZ, az_t, transcriber=tr,
                                   steering=method, pad_s=0.0)
            e, n_ref = word_errors(target, span.text)
            errors[method] += e
            row.append(f"{method}={e / n_ref:.2f}")
        n_words += n_ref
        print(f"target {az_t:+4d} interferer {az_i:+4d}: " + " ".join(row))
    wer = {m: errors[m] / n_words for m in errors}
    print("WER at 0 dB SIR (alone: no interferer):", {m: round(w, 3) for m, w in wer.items()})
    assert wer[DEFAULT_STEERING] <= wer["mix"] - 0.15
    assert wer[DEFAULT_STEERING] <= min(wer[m] for m in STEER_METHODS) + 0.05
