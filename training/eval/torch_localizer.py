"""A training checkpoint as a Localizer (torch eager), for `bench localize --model run/best.pt`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from agent.core.audio import resample_to
from agent.core.features import compute_features
from agent.core.predictor import Clip
from agent.core.scene import SourceEstimate
from agent.core.seld import DecodeConfig, decode_clip
from training.models.encoder import load_checkpoint


class TorchEncoderLocalizer:
    needs_audio = True

    def __init__(self, checkpoint: str | os.PathLike, decode: DecodeConfig | None = None, threads: int = 0):
        self.model, ck = load_checkpoint(checkpoint)
        self.decode = decode or DecodeConfig(**(ck.get("decode") or {}))
        self.name = f"torch:{Path(checkpoint).name}"
        if threads:
            torch.set_num_threads(threads)

    def frames(self, audio: np.ndarray, rate_hz: int, where: str = "audio") -> list[np.ndarray]:
        f = self.model.cfg.features
        sp, se = compute_features(resample_to(audio, rate_hz, f.sample_rate_hz), f.sample_rate_hz, f, where)
        return self.model.infer(sp, se)

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        acc, logd = self.frames(clip.audio, clip.sample_rate_hz, clip.scene_id)[:2]
        return decode_clip(acc, logd, self.model.cfg.slot_labels, self.model.cfg.output_rate_hz, self.decode)
