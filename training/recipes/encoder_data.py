"""Feature cache for encoder training: a rendered dataset -> memory-mapped float16 arrays.

Features cost ~50 ms a clip, a training step far more per clip; computing them
once lets every epoch read them back at memory speed. The cache folder holds
spatial.npy (N, 6, T, F), semantic.npy (N, T, F), targets.npz and meta.json,
written under temporary names and renamed only when complete. The targets are laid out for
the model's output tracks (`EncoderConfig.tracks`; meta.json's "tracks", absent in caches
built before the option: one), and a model with another track count refuses the cache.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agent.core.dataset import read_dataset, read_wav, write_json
from agent.core.errors import BinauraError
from agent.core.features import SPATIAL_CHANNELS, FeatureConfig, compute_features
from agent.core.outdir import OutputKind, output_folder
from training.models.config import EncoderConfig
from training.models.targets import seld_targets
from training.synth.device import carries_pinna_cues

CACHE_FORMAT = "binaura-feature-cache-v1"
#: A cache folder (and how one made before output markers is recognised).
CACHE_KIND = OutputKind("feature-cache", manifest="meta.json", names=("spatial.npy", "semantic.npy", "targets.npz"))
_STATE: dict = {}


def _features_one(i: int):
    ds, feat = _STATE["ds"], _STATE["feat"]
    scene = ds.scenes[i]
    audio, rate = read_wav(ds.audio_path(scene))
    if rate != feat.sample_rate_hz:
        raise BinauraError(f"{scene.audio}: {rate} Hz; the encoder's features need {feat.sample_rate_hz} Hz")
    spatial, semantic = compute_features(audio, rate, feat, where=scene.audio)
    return i, spatial.astype(np.float16), semantic.astype(np.float16)


def build_cache(data: str | os.PathLike, out: str | os.PathLike, cfg: EncoderConfig,
                workers: int | None = None, progress: bool = True) -> Path:
    """Compute features and SELD targets of every clip of `data` into the folder `out`."""
    ds = read_dataset(data)
    feat = cfg.features
    durations = {round(s.duration_s, 3) for s in ds.scenes}
    if len(durations) != 1:
        raise BinauraError(f"{data}: the feature cache needs clips of one length, found {sorted(durations)} s")
    n_samples = int(round(durations.pop() * feat.sample_rate_hz))
    n_frames = feat.n_frames(n_samples)
    pool = cfg.spatial.time_pool
    n_out = n_frames // pool
    if n_out < 1:
        raise BinauraError(f"{data}: clips shorter than one output frame")
    with output_folder(out, CACHE_KIND) as tmp:
        _write_cache(ds, data, tmp, cfg, n_frames, n_out, workers, progress)
    return Path(out)


def _write_cache(ds, data, tmp: Path, cfg: EncoderConfig, n_frames: int, n_out: int, workers: int | None,
                 progress: bool) -> None:
    feat, pool = cfg.features, cfg.spatial.time_pool
    n, f = len(ds.scenes), feat.n_mels
    spatial = np.lib.format.open_memmap(tmp / "spatial.npy", "w+", np.float16, (n, len(SPATIAL_CHANNELS), n_frames, f))
    semantic = np.lib.format.open_memmap(tmp / "semantic.npy", "w+", np.float16, (n, n_frames, f))
    _STATE.update(ds=ds, feat=feat)
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=n, desc="features", unit="clip", disable=not progress)
    if workers == 1:
        it = map(_features_one, range(n))
        for i, sp, se in it:
            spatial[i], semantic[i] = sp[:, :n_frames], se[:n_frames]
            bar.update()
    else:
        with mp.get_context("fork").Pool(workers) as p:
            for i, sp, se in p.imap_unordered(_features_one, range(n), chunksize=8):
                spatial[i], semantic[i] = sp[:, :n_frames], se[:n_frames]
                bar.update()
    bar.close()
    spatial.flush()
    semantic.flush()
    acc, logd, act = zip(*(seld_targets(s, n_out, pool, feat, cfg.labels, cfg.log_distance_range, cfg.tracks)
                           for s in ds.scenes))
    np.savez(tmp / "targets.npz", accdoa=np.stack(acc).astype(np.float16), log_distance=np.stack(logd),
             active=np.stack(act))
    # Normalisation statistics from up to 2000 clips (per channel and band).
    sel = np.linspace(0, n - 1, min(n, 2000)).astype(int)
    sp = spatial[sel].astype(np.float32)
    se = semantic[sel].astype(np.float32)
    write_json(tmp / "meta.json", {
        "format": CACHE_FORMAT, "data": str(Path(data).resolve()), "n_clips": n, "n_frames": n_frames,
        "n_out": n_out, "time_pool": pool, "features": feat.to_dict(), "labels": list(cfg.labels),
        "tracks": cfg.tracks,
        "ids": [s.id for s in ds.scenes], "hrtf": [s.hrtf for s in ds.scenes],
        "pinna_cues": [carries_pinna_cues(s.extra) for s in ds.scenes],
        "rooms": [s.room_kind for s in ds.scenes], "n_sources": [len(s.sources) for s in ds.scenes],
        "spatial_mean": sp.mean(axis=(0, 2)).tolist(), "spatial_std": sp.std(axis=(0, 2)).tolist(),
        "semantic_mean": se.mean(axis=(0, 1)).tolist(), "semantic_std": se.std(axis=(0, 1)).tolist()})
    del spatial, semantic


def default_cache_dir(data: str | os.PathLike, cfg: EncoderConfig) -> Path:
    """Where a model's feature cache of `data` goes by default: DATA/features-SIZE, and
    DATA/features-SIZE-tracksN for a model with N > 1 output tracks (its targets differ)."""
    suffix = f"-tracks{cfg.tracks}" if cfg.tracks != 1 else ""
    return Path(data) / f"features-{cfg.name}{suffix}"


class FeatureCache:
    """A built cache, memory-mapped. Checks it matches the model's features and labels."""

    def __init__(self, path: str | os.PathLike, cfg: EncoderConfig | None = None):
        import json  # noqa: PLC0415

        self.path = Path(path)
        try:
            self.meta = json.loads((self.path / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise BinauraError(f"{self.path}: not a feature cache (meta.json unreadable: {e}); "
                               f"build it with `binaura train encoder --data DATASET`") from e
        if self.meta.get("format") != CACHE_FORMAT:
            raise BinauraError(f"{self.path}: expected a {CACHE_FORMAT} cache")
        #: output tracks per class its targets are laid out for (caches before the option: 1)
        self.tracks = int(self.meta.get("tracks", 1))
        if cfg is not None:
            p = []
            if FeatureConfig.from_dict(self.meta["features"]) != cfg.features:
                p.append("feature config differs from the model's")
            if tuple(self.meta["labels"]) != tuple(cfg.labels):
                p.append("label vocabulary differs from the model's")
            if self.meta["time_pool"] != cfg.spatial.time_pool:
                p.append("time pooling differs from the model's")
            if self.tracks != cfg.tracks:
                p.append(f"its targets have {self.tracks} track(s) per class, the model {cfg.tracks} "
                         f"(tracks); build a cache for {cfg.tracks} track(s) in another folder")
            if p:
                raise BinauraError(f"{self.path}: " + "; ".join(p) + "; rebuild the cache")
        self.spatial = np.load(self.path / "spatial.npy", mmap_mode="r")
        self.semantic = np.load(self.path / "semantic.npy", mmap_mode="r")
        t = np.load(self.path / "targets.npz")
        self.accdoa, self.log_distance, self.active = t["accdoa"], t["log_distance"], t["active"]

    def __len__(self) -> int:
        return self.meta["n_clips"]

    def batch(self, pick: np.ndarray) -> tuple[np.ndarray, ...]:
        """Clips `pick` as float32 features and targets: spatial, semantic, accdoa, log_distance, active."""
        return (self.spatial[pick].astype(np.float32), self.semantic[pick].astype(np.float32),
                self.accdoa[pick].astype(np.float32), self.log_distance[pick], self.active[pick])
