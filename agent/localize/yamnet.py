"""YAMNet on the device: ONNX Runtime over numpy log-mel patches, no torch.

`YamnetRuntime` loads the float32 graph that set-up builds
(`python -m training.models.yamnet_setup --ensure`), checks the manifest and the
files' sizes, and returns per 0.96 s patch a 1024-d embedding and the 521
AudioSet scores; `label_scores` folds those into binaura's labels through the
explicit table of agent.core.audioset (a zero-shot classifier, or a teacher).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.core.audioset import AudiosetMap, read_class_map
from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.yamnet_features import (
    CLASS_MAP_FILE,
    FRAME_RATE_HZ,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    N_MELS,
    ONNX_FILE,
    PATCH_FRAMES,
    PATCH_HOP_FRAMES,
    default_yamnet_dir,
    to_mono_16k,
    waveform_to_patches,
)

_SETUP_HELP = "run `python -m training.models.yamnet_setup --ensure` (or `make yamnet`) once"


@dataclass
class YamnetOutput:
    """One clip's YAMNet outputs, one row per patch; patch i covers [start_s[i], start_s[i] + 0.96)."""

    start_s: np.ndarray  # (N,)
    embeddings: np.ndarray  # (N, 1024)
    scores: np.ndarray  # (N, 521) AudioSet scores in [0, 1]
    label_scores: np.ndarray  # (N, len(LABELS)) through the AudioSet table


class YamnetRuntime:
    """The YAMNet folder, validated, with an ONNX Runtime session (one thread by default)."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 1, verify_sha256: bool = False,
                 labels: tuple[str, ...] = LABELS):
        import onnxruntime as ort  # noqa: PLC0415

        self.root = Path(path) if path is not None else default_yamnet_dir()
        try:
            self.manifest = json.loads((self.root / MANIFEST_FILE).read_text())
        except (OSError, ValueError) as e:
            raise BinauraError(f"{self.root}: no readable YAMNet manifest {MANIFEST_FILE}; {_SETUP_HELP}") from e
        if self.manifest.get("format") != MANIFEST_FORMAT:
            raise BinauraError(f"{self.root / MANIFEST_FILE}: expected format {MANIFEST_FORMAT}, "
                               f"got {self.manifest.get('format')!r}; {_SETUP_HELP}")
        for name, f in self.manifest.get("files", {}).items():
            p = self.root / name
            if not p.is_file() or p.stat().st_size != f["bytes"] or (verify_sha256 and sha256_file(p) != f["sha256"]):
                raise BinauraError(f"{p}: missing or not the file the manifest records; {_SETUP_HELP}")
        self.class_names = read_class_map(self.root / CLASS_MAP_FILE)
        self.audioset = AudiosetMap.build(self.class_names) if labels == LABELS else None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.root / ONNX_FILE), opts, providers=["CPUExecutionProvider"])

    def run_patches(self, patches: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """(N, 96, 64) log-mel patches -> embeddings (N, 1024), AudioSet scores (N, 521)."""
        x = np.asarray(patches, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (PATCH_FRAMES, N_MELS):
            raise BinauraError(f"YAMNet: expected (N, {PATCH_FRAMES}, {N_MELS}) log-mel patches, got {x.shape}")
        embs, scores = [], []
        for i in range(0, len(x), batch):
            e, s = self.session.run(["embedding", "class_scores"], {"log_mel": x[i:i + batch, None]})
            embs.append(e)
            scores.append(s)
        if not embs:
            return np.zeros((0, 1024), np.float32), np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(embs), np.concatenate(scores)

    def __call__(self, audio: np.ndarray, sample_rate_hz: int, hop_frames: int = PATCH_HOP_FRAMES) -> YamnetOutput:
        """Mono (T,) or multichannel (C, T) audio at >= 16 kHz -> one row per patch every hop_frames x 10 ms."""
        p = waveform_to_patches(to_mono_16k(audio, sample_rate_hz), hop_frames)
        emb, scores = self.run_patches(p)
        start_s = np.arange(len(p)) * hop_frames / FRAME_RATE_HZ
        return YamnetOutput(start_s, emb, scores, self.label_scores(scores))

    def label_scores(self, scores: np.ndarray) -> np.ndarray:
        """(..., 521) -> (..., len(LABELS)) through the explicit AudioSet table."""
        if self.audioset is None:
            raise BinauraError("YAMNet maps AudioSet classes to binaura's own LABELS only")
        return self.audioset.label_scores(scores)

    def classify(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[str, np.ndarray]:
        """Zero-shot clip label: the label whose score, averaged over the clip's patches, is highest;
        and those (len(LABELS),) averaged scores."""
        out = self(audio, sample_rate_hz)
        mean = out.label_scores.mean(axis=0)
        return LABELS[int(np.argmax(mean))], mean
