"""Training batches of the encoder recipe: clips drawn from the feature cache and augmented.

Augmentation: left-right mirroring of the features with azimuth negated (exact for a symmetric
head, and it doubles direction coverage), band masking of the level/phase maps so that no
single pinna notch of one head is relied upon, and (when p_eq > 0) a common-mode equalisation
of both ears, so that the pinna's filtering is not read against the spectra of the training
sounds alone. `polar_mask` says which clips can teach the polar angle at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from agent.core.features import FeatureConfig, mel_band_centres_hz, mirror_spatial
from training.recipes.encoder_data import FeatureCache

if TYPE_CHECKING:
    from training.recipes.encoder import EncoderTrainConfig


def polar_mask(cache: FeatureCache, cfg: EncoderTrainConfig) -> np.ndarray:
    """(N,) bool: clips whose head has polar (pinna) cues and whose recording kept them (not
    band-limited, not first-order ambisonic: training/synth/device.carries_pinna_cues; caches
    built before that was recorded count every clip as keeping them)."""
    heads = cache.meta.get("hrtf") or [""] * len(cache)
    kept = cache.meta.get("pinna_cues") or [True] * len(cache)
    return np.array([h not in cfg.no_polar_heads and bool(k) for h, k in zip(heads, kept, strict=True)])


def common_mode_eq(rng: np.random.Generator, n: int, eq_db: float,
                   *band_hz: np.ndarray) -> list[np.ndarray]:
    """n random smooth gain curves (dB), each read at the band centres of every grid in band_hz
    (so the spatial and the semantic grids get the same curve): a tilt of up to +-eq_db/2 at the
    ends of the first grid's range plus cos(pi k u + phase) terms, k = 1..4, of up to eq_db/(2k),
    u being log frequency scaled to [0, 1] over that range. The fastest term's half period is a
    quarter of the range (about 2 of the 8.6 octaves from 50 Hz to 20 kHz): far broader than a
    pinna notch, so a notch still reads as one.
    Each curve has zero mean over the first grid (the mix's level is left to the distance cue).
    Returns one (n, len(grid)) array per grid, float32."""
    lo, hi = np.log(band_hz[0].min()), np.log(band_hz[0].max())
    tilt = rng.uniform(-0.5, 0.5, (n, 1)) * eq_db
    k = np.arange(1, 5)
    amp = rng.uniform(-1.0, 1.0, (n, k.size)) * eq_db / (2 * k)
    phase = rng.uniform(0.0, 2 * np.pi, (n, k.size))

    def curve(hz):
        u = (np.log(hz) - lo) / (hi - lo)
        c = tilt * (2 * u[None, :] - 1)
        return c + np.einsum("nk,nkf->nf", amp, np.cos(np.pi * k[None, :, None] * u[None, None, :]
                                                       + phase[:, :, None]))

    offset = curve(band_hz[0]).mean(axis=1, keepdims=True)
    return [(curve(hz) - offset).astype(np.float32) for hz in band_hz]


class Batches:
    """Random batches from the cache's training clips, with augmentation, as torch tensors.

    On a GPU the whole cache is copied to the device once (float16, a few GB for
    tens of thousands of clips) and batches are gathered and augmented there,
    so the host never limits the step rate.
    """

    def __init__(self, cache: FeatureCache, indices: np.ndarray, cfg: EncoderTrainConfig, rng: np.random.Generator,
                 device: torch.device | None = None, resident: bool | None = None):
        self.cache, self.idx, self.cfg, self.rng = cache, indices, cfg, rng
        self.polar_ok = torch.from_numpy(polar_mask(cache, cfg))
        fc = FeatureConfig.from_dict(cache.meta["features"])
        self.band_hz = (mel_band_centres_hz(fc.n_mels, fc.fmin_hz, fc.fmax_hz),
                        mel_band_centres_hz(fc.n_mels, fc.fmin_hz, fc.semantic_fmax_hz))
        self.device = device or torch.device("cpu")
        self.resident = None
        if resident if resident is not None else self.device.type == "cuda":
            self.resident = tuple(torch.from_numpy(np.array(a)).to(self.device)  # a copy: the cache is read-only
                                  for a in (cache.spatial, cache.semantic, cache.accdoa, cache.log_distance,
                                            cache.active))
            self.polar_ok = self.polar_ok.to(self.device)

    def sample(self):
        cfg, rng = self.cfg, self.rng
        pick = np.sort(rng.choice(self.idx, size=cfg.batch_size, replace=len(self.idx) < cfg.batch_size))
        at = torch.from_numpy(pick).to(self.polar_ok.device)  # the device the data lies on
        self.last = at  # the clips of the last batch (the trainer's per-clip masks)
        if self.resident is not None:
            sp, se, acc, logd, act = (a[at] for a in self.resident)
            sp, se, acc = sp.float(), se.float(), acc.float()
        else:
            sp, se, acc, logd, act = (torch.from_numpy(a) for a in self.cache.batch(pick))
        mirror = torch.from_numpy(rng.random(len(pick)) < cfg.p_mirror).to(sp.device)
        if mirror.any():
            sp[mirror] = mirror_spatial(sp[mirror])
            acc[mirror, ..., 1] = -acc[mirror, ..., 1]
        # band masking: a few adjacent bands of channels 0-4 (levels and phases) replaced by
        # their mean over the clip
        masked = rng.random(len(pick)) < cfg.p_band_mask
        width = rng.integers(1, cfg.max_band_mask + 1, size=len(pick))
        lo = rng.integers(0, sp.shape[-1] - width)
        if masked.any():
            f = np.arange(sp.shape[-1])
            band = masked[:, None] & (f >= lo[:, None]) & (f < (lo + width)[:, None])  # (B, F)
            band_t = torch.from_numpy(band).to(sp.device)[:, None, None, :]
            levels = sp[:, :5]
            sp[:, :5] = torch.where(band_t, levels.mean(dim=2, keepdim=True), levels)
        # drawn only when used: runs without it keep their random streams
        eq = rng.random(len(pick)) < cfg.p_eq if cfg.p_eq > 0 else np.zeros(len(pick), bool)
        if eq.any():
            g_sp, g_se = (torch.from_numpy(g).to(sp.device)
                          for g in common_mode_eq(rng, int(eq.sum()), cfg.eq_db, *self.band_hz))
            rows = torch.from_numpy(np.flatnonzero(eq)).to(sp.device)
            sp[rows, 0] += g_sp[:, None, :]
            sp[rows, 1] += g_sp[:, None, :]
            se[rows] += g_se[:, None, :]
        return sp, se, acc, logd, act, self.polar_ok[at]


def validation_indices(n_clips: int, val_clips: int) -> np.ndarray:
    """The clips a run on an n_clips cache holds out for validation: its last ones, at most a fifth."""
    n_val = min(val_clips, n_clips // 5)
    return np.arange(n_clips - n_val, n_clips)
