"""What the frozen encoder hears in every clip, computed once for language-model training.

The audio-language model reads the encoder's frame outputs, never the audio: its training
would re-run the encoder on every clip of every epoch without this cache. For each clip
of a dataset the folder holds, at the encoder's output rate (10 frames per second):
- spatial.npy (N, T, Ds), semantic.npy (N, T, Dm): the two branches' frame embeddings;
- seld.npy (N, T, C * 5): per class the ACCDOA vector (3), the log-distance and the class
  logit, i.e. what the encoder decoded (the "cascade" information, fed to the projector
  beside the embeddings);
- meta.json: the clip ids in order, the encoder checkpoint's SHA-256 (the export the agent
  runs records the same one, so a language model and an encoder can be matched), shapes.
The encoder runs in torch from its checkpoint, equal to the ONNX export to 1e-4 (the export's
own parity gate); with mirror averaging (the shipped runtime's default) the ACCDOA vectors
and distances are averaged with the left-right mirrored pass as the runtime does.
By default the cache is built on the CPU one clip at a time; `device="cuda"` runs the encoder on
the GPU over batches of clips while `workers` processes compute the features (on a 16-core GPU
machine that is what keeps a few thousand clips to seconds; the encoder alone takes ~1 s a clip
on 2 CPU cores). On the CPU with the default batch of one clip the arrays are those of the
one-clip path (`encoder_outputs`) bit for bit, whatever `workers` is.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agent.core.audio import resample_to
from agent.core.dataset import read_dataset, read_wav, write_json
from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.features import compute_features, mirror_spatial
from agent.core.outdir import OutputKind, output_folder
from agent.core.seld import seld_vector
from agent.core.tracks import align_tracks
from training.models.encoder import BinauralEncoder, load_checkpoint

CACHE_FORMAT = "binaura-encoder-outputs-v1"
CACHE_KIND = OutputKind("encoder-outputs", manifest="meta.json", names=("spatial.npy", "semantic.npy", "seld.npy"))
#: The shipped encoder's checkpoint (its ONNX export is agent/assets/encoder).
DEFAULT_ENCODER_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "encoder_small.pt"


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """"cpu", "cuda" (or "cuda:N") or "auto" (CUDA when torch sees it) -> a torch device."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BinauraError(f"device {device!r}: torch sees no CUDA device here (torch {torch.__version__})")
    return dev


def clip_features(model: BinauralEncoder, audio: np.ndarray, rate_hz: int,
                  where: str = "audio") -> tuple[np.ndarray, np.ndarray]:
    """One clip -> the encoder's input features: spatial (6, T, F), semantic (T, F)."""
    f = model.cfg.features
    return compute_features(resample_to(audio, rate_hz, f.sample_rate_hz), f.sample_rate_hz, f, where)


@torch.no_grad()
def encode_features(model: BinauralEncoder, spatial: list[np.ndarray], semantic: list[np.ndarray],
                    mirror_tta: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Features of B clips of one length -> per clip spatial (T, Ds), semantic (T, Dm), seld (T, S * 5)
    float32 (S = tracks x C slots; agent.core.seld.seld_vector), in one forward pass on the
    model's device (2B clips with mirror averaging; a multi-track model's mirror pass has its
    tracks aligned to the plain pass's first, as the runtime does)."""
    dev = next(model.parameters()).device
    sp_t = torch.from_numpy(np.stack(spatial)).to(dev)
    se_t = torch.from_numpy(np.stack(semantic)).to(dev)
    b = sp_t.shape[0]
    if mirror_tta:
        sp_t = torch.cat([sp_t, mirror_spatial(sp_t)])
        se_t = torch.cat([se_t, se_t])
    accdoa, log_distance, class_logits, hs, hm = (t.float().cpu().numpy() for t in model(sp_t, se_t))
    if mirror_tta:  # as the runtime's "mean" mode (agent.localize.mirror): reflected back (y -> -y), tracks aligned
        back, d_back = align_tracks(accdoa[:b], accdoa[b:] * np.float32([1.0, -1.0, 1.0]), model.cfg.tracks,
                                    log_distance[b:])
        accdoa[:b], log_distance[:b] = 0.5 * (accdoa[:b] + back), 0.5 * (log_distance[:b] + d_back)
    hs, hm, accdoa, log_distance, class_logits = (t[:b] for t in (hs, hm, accdoa, log_distance, class_logits))
    return [(hs[i], hm[i], seld_vector(accdoa[i], log_distance[i], class_logits[i])) for i in range(b)]


def encoder_outputs(model: BinauralEncoder, audio: np.ndarray, rate_hz: int, mirror_tta: bool,
                    where: str = "audio") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip -> spatial (T, Ds), semantic (T, Dm), seld (T, C * 5) float32 (on the model's device)."""
    sp, se = clip_features(model, audio, rate_hz, where)
    return encode_features(model, [sp], [se], mirror_tta)[0]


_STATE: dict = {}  # what forked feature workers read: the dataset, the encoder's feature config, mono


def _features_of(i: int) -> tuple[int, np.ndarray, np.ndarray]:
    ds, f, mono = _STATE["ds"], _STATE["features"], _STATE["mono"]
    scene = ds.scenes[i]
    audio, rate = read_wav(ds.audio_path(scene))
    if mono:
        audio = np.repeat(audio.mean(axis=0, keepdims=True), 2, axis=0)
    sp, se = compute_features(resample_to(audio, rate, f.sample_rate_hz), f.sample_rate_hz, f, scene.audio)
    return i, sp, se


def _features_in_order(pool, n: int, window: int):
    """(i, spatial, semantic) for clips 0..n-1 in order; with a pool, the next window of clips is
    computed while the current one is encoded (memory stays at two windows)."""
    if pool is None:
        yield from map(_features_of, range(n))
        return
    starts = list(range(0, n, window))
    pending = pool.map_async(_features_of, range(0, min(n, window)), chunksize=4) if starts else None
    for k in range(len(starts)):
        done = pending.get()
        if k + 1 < len(starts):
            nxt = starts[k + 1]
            pending = pool.map_async(_features_of, range(nxt, min(n, nxt + window)), chunksize=4)
        yield from done


def build_encoder_cache(data: str | os.PathLike, out: str | os.PathLike,
                        checkpoint: str | os.PathLike | None = None, mirror_tta: bool = True,
                        mono: bool = False, progress: bool = True, device: str | torch.device | None = "cpu",
                        batch_size: int | None = None, workers: int = 1) -> Path:
    """Run the encoder over every clip of `data` into the folder `out` (see the module doc).
    Clips must share one length (synthesized datasets do). mono: both ears get the L+R average
    (the paper's mono baseline: the same model, no interaural cues).
    device: "cpu" (default), "cuda" or "auto"; batch_size: clips per encoder pass (default 1 on
    the CPU, 32 on a GPU); workers: processes computing the features (default 1: this one)."""
    checkpoint = Path(checkpoint or DEFAULT_ENCODER_CHECKPOINT)
    model, _ = load_checkpoint(checkpoint)
    ds = read_dataset(data)
    durations = {round(s.duration_s, 3) for s in ds.scenes}
    if len(durations) != 1:
        raise BinauraError(f"{data}: the encoder cache needs clips of one length, found {sorted(durations)} s")
    dev = resolve_device(device)
    batch_size = batch_size or (1 if dev.type == "cpu" else 32)
    if batch_size < 1 or workers < 1:
        raise BinauraError(f"encoder cache: batch_size and workers must be >= 1, got {batch_size}, {workers}")
    threads = torch.get_num_threads()
    n = len(ds.scenes)
    _STATE.update(ds=ds, features=model.cfg.features, mono=mono)
    # The pool forks before this process touches CUDA (a forked child must never inherit it).
    pool = mp.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        model.to(dev)
        with output_folder(out, CACHE_KIND) as tmp:
            first = None
            arrays = None
            batch: list[tuple[int, np.ndarray, np.ndarray]] = []
            bar = tqdm(total=n, desc="encoder outputs", unit="clip", disable=not progress)
            for i, sp, se in _features_in_order(pool, n, max(64, 16 * workers, 2 * batch_size)):
                batch.append((i, sp, se))
                if len(batch) < batch_size and i < n - 1:
                    continue
                outs_batch = encode_features(model, [b[1] for b in batch], [b[2] for b in batch], mirror_tta)
                for (j, _, _), outs in zip(batch, outs_batch, strict=True):
                    if arrays is None:
                        first = [o.shape for o in outs]
                        arrays = [np.lib.format.open_memmap(tmp / name, "w+", np.float16, (n, *o.shape))
                                  for name, o in zip(("spatial.npy", "semantic.npy", "seld.npy"), outs, strict=True)]
                    for a, o, shape in zip(arrays, outs, first, strict=True):
                        if o.shape != shape:
                            raise BinauraError(f"{ds.scenes[j].audio}: {o.shape[0]} encoder frames, the first clip "
                                               f"gave {shape[0]}")
                        a[j] = o
                bar.update(len(batch))
                batch = []
            bar.close()
            for a in arrays:
                a.flush()
            write_json(tmp / "meta.json", {
                "format": CACHE_FORMAT, "data": str(Path(data).resolve()), "ids": [s.id for s in ds.scenes],
                "n_frames": first[0][0], "spatial_dim": first[0][1], "semantic_dim": first[1][1],
                "seld_dim": first[2][1], "labels": list(model.cfg.labels), "tracks": model.cfg.tracks,
                "mirror_tta": mirror_tta,
                "audio_input": "mono" if mono else "binaural",
                "output_rate_hz": model.cfg.output_rate_hz, "encoder_checkpoint_sha256": sha256_file(checkpoint),
                "torch_threads": threads, "device": dev.type, "batch_size": batch_size})
            del arrays
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _STATE.clear()
    return Path(out)


@dataclass
class EncoderCache:
    """A built cache, memory-mapped: row i is the clip with id meta['ids'][i]."""

    path: Path
    meta: dict
    spatial: np.ndarray
    semantic: np.ndarray
    seld: np.ndarray

    @classmethod
    def open(cls, path: str | os.PathLike) -> EncoderCache:
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise BinauraError(f"{path}: not an encoder-output cache (meta.json unreadable: {e}); build it with "
                               f"`binaura train align --data DATASET`") from e
        if meta.get("format") != CACHE_FORMAT:
            raise BinauraError(f"{path}: expected a {CACHE_FORMAT} cache, found {meta.get('format')!r}")
        arrays = [np.load(path / n, mmap_mode="r") for n in ("spatial.npy", "semantic.npy", "seld.npy")]
        return cls(path, meta, *arrays)

    @property
    def index(self) -> dict[str, int]:
        return {cid: i for i, cid in enumerate(self.meta["ids"])}

    def clip(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row i as float32: spatial (T, Ds), semantic (T, Dm), seld (T, C * 5)."""
        return (self.spatial[i].astype(np.float32), self.semantic[i].astype(np.float32),
                self.seld[i].astype(np.float32))
