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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from agent.core.audio import resample_to
from agent.core.dataset import read_dataset, read_wav, write_json
from agent.core.errors import BinauraError
from agent.core.features import compute_features, mirror_spatial
from agent.core.outdir import OutputKind, output_folder
from agent.core.seld import seld_vector
from training.models.encoder import BinauralEncoder, load_checkpoint

CACHE_FORMAT = "binaura-encoder-outputs-v1"
CACHE_KIND = OutputKind("encoder-outputs", manifest="meta.json", names=("spatial.npy", "semantic.npy", "seld.npy"))
#: The shipped encoder's checkpoint (its ONNX export is agent/assets/encoder).
DEFAULT_ENCODER_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "encoder_small.pt"


def _sha256(path: Path) -> str:
    import hashlib  # noqa: PLC0415

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def encoder_outputs(model: BinauralEncoder, audio: np.ndarray, rate_hz: int, mirror_tta: bool,
                    where: str = "audio") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip -> spatial (T, Ds), semantic (T, Dm), seld (T, C * 5) float32."""
    f = model.cfg.features
    sp, se = compute_features(resample_to(audio, rate_hz, f.sample_rate_hz), f.sample_rate_hz, f, where)
    sp_t, se_t = torch.from_numpy(sp[None]), torch.from_numpy(se[None])
    if mirror_tta:
        sp_t = torch.cat([sp_t, mirror_spatial(sp_t)])
        se_t = torch.cat([se_t, se_t])
    accdoa, log_distance, class_logits, hs, hm = model(sp_t, se_t)
    if mirror_tta:  # as the runtime: reflect the mirror's vectors back (y -> -y) and average
        accdoa = 0.5 * (accdoa[0] + accdoa[1] * torch.tensor([1.0, -1.0, 1.0]))
        log_distance = 0.5 * (log_distance[0] + log_distance[1])
    else:
        accdoa, log_distance = accdoa[0], log_distance[0]
    return hs[0].numpy(), hm[0].numpy(), seld_vector(accdoa.numpy(), log_distance.numpy(), class_logits[0].numpy())


def build_encoder_cache(data: str | os.PathLike, out: str | os.PathLike,
                        checkpoint: str | os.PathLike | None = None, mirror_tta: bool = True,
                        mono: bool = False, progress: bool = True) -> Path:
    """Run the encoder over every clip of `data` into the folder `out` (see the module doc).
    Clips must share one length (synthesized datasets do). mono: both ears get the L+R average
    (the paper's mono baseline: the same model, no interaural cues)."""
    checkpoint = Path(checkpoint or DEFAULT_ENCODER_CHECKPOINT)
    model, _ = load_checkpoint(checkpoint)
    ds = read_dataset(data)
    durations = {round(s.duration_s, 3) for s in ds.scenes}
    if len(durations) != 1:
        raise BinauraError(f"{data}: the encoder cache needs clips of one length, found {sorted(durations)} s")
    threads = torch.get_num_threads()
    with output_folder(out, CACHE_KIND) as tmp:
        first = None
        arrays = None
        for i, scene in enumerate(tqdm(ds.scenes, desc="encoder outputs", unit="clip", disable=not progress)):
            audio, rate = read_wav(ds.audio_path(scene))
            if mono:
                audio = np.repeat(audio.mean(axis=0, keepdims=True), 2, axis=0)
            outs = encoder_outputs(model, audio, rate, mirror_tta, scene.audio)
            if arrays is None:
                first = [o.shape for o in outs]
                arrays = [np.lib.format.open_memmap(tmp / name, "w+", np.float16, (len(ds.scenes), *o.shape))
                          for name, o in zip(("spatial.npy", "semantic.npy", "seld.npy"), outs, strict=True)]
            for a, o, shape in zip(arrays, outs, first, strict=True):
                if o.shape != shape:
                    raise BinauraError(f"{scene.audio}: {o.shape[0]} encoder frames, the first clip gave {shape[0]}")
                a[i] = o
        for a in arrays:
            a.flush()
        write_json(tmp / "meta.json", {
            "format": CACHE_FORMAT, "data": str(Path(data).resolve()), "ids": [s.id for s in ds.scenes],
            "n_frames": first[0][0], "spatial_dim": first[0][1], "semantic_dim": first[1][1],
            "seld_dim": first[2][1], "labels": list(model.cfg.labels), "mirror_tta": mirror_tta,
            "audio_input": "mono" if mono else "binaural",
            "output_rate_hz": model.cfg.output_rate_hz, "encoder_checkpoint_sha256": _sha256(checkpoint),
            "torch_threads": threads})
        del arrays
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
