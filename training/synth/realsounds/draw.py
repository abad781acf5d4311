"""Where scenes meet real recordings: which sources are real, and a real ambience bed.

``draw_real`` runs on its own generator (seeded by seed, index and split), so a config with
real_share = real_background_share = 0 draws nothing and renders bit for bit as before,
and turning it on changes no other draw of the scene. Procedural sounds and TTS speech
stay as augmentation: the rest of the sources. Two real sources of one class (SynthConfig.
p_same_class) play two recordings wherever the class's side of the split holds two.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy.fft import next_fast_len

from agent.core.errors import BinauraError
from training.synth.realsounds.pool import open_real_sounds, split_for

#: SceneSpec.extra key of the real ambience entry id (a diffuse background instead of noise).
AMBIENCE_KEY = "real_ambience"


def draw_real(cfg, sources: list, rng: np.random.Generator, again: np.random.Generator | None = None) -> dict:
    """Mark a real_share of the sources real (src.real = a catalog id of their class, on the
    scene's side of the split); returns SceneSpec.extra additions (a real ambience id).

    A source whose draw would replay the recording of an earlier real source of its class (two
    identical dogs are one dog) is drawn again from `again` among the class's other recordings,
    where there are any (RealSounds.pick); rng's stream, and so every other draw, stays as is.
    """
    kit = open_real_sounds()
    split = split_for(cfg.held_out_instances)
    for k, src in enumerate(sources):
        if rng.random() < cfg.real_share:
            playing = [s.real for s in sources[:k] if s.label == src.label and s.real is not None]
            src.real = kit.pick(src.label, split, rng, cfg.real_band_limited_weight,  # None: none of that class
                                avoid=playing, again=again, half=cfg.real_train_half)
            if src.real is None and cfg.held_out_instances and cfg.real_share >= 1.0:
                raise BinauraError(f"an all-real benchmark split needs a held-out recording of every class, and "
                                   f"the sound kit at {kit.root} holds none of {src.label!r}; rebuild it "
                                   f"(`make sounds`) or leave the class out of the config")
    extra = {}
    if rng.random() < cfg.real_background_share:
        found = kit.pick("ambience", split, rng, cfg.real_band_limited_weight, half=cfg.real_train_half)
        if found is not None:
            extra[AMBIENCE_KEY] = found
    return extra


def ambience_noise(entry_id: str, freqs_hz: np.ndarray, coherence: np.ndarray, rate_hz: int, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """A diffuse binaural bed (2, n), unit power per ear, from one real ambience recording.

    Two stretches of the recording (mutually incoherent) are mixed per frequency to the
    head's diffuse-field interaural coherence (as room.diffuse_pair_spectra does for noise):
    L = A, R = c A + sqrt(1 - c^2) B.
    """
    kit = open_real_sounds()
    a = kit.signal(entry_id, n, rate_hz, rng)
    b = kit.signal(entry_id, n, rate_hz, rng)
    m = next_fast_len(n, real=True)
    spec_a, spec_b = sfft.rfft(a, m), sfft.rfft(b, m)
    f = np.fft.rfftfreq(m, 1.0 / rate_hz)
    c = np.interp(f, freqs_hz, coherence)
    pair = np.stack([spec_a, c * spec_a + np.sqrt(np.maximum(1.0 - c**2, 0.0)) * spec_b])
    out = sfft.irfft(pair, m, axis=-1)[:, :n]
    return (out / (np.sqrt(np.mean(out**2, axis=1, keepdims=True)) + 1e-12)).astype(np.float32)
