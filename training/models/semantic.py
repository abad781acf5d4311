"""Semantic encoders for the mono mix: our own CNN branch, a pretrained Whisper-style encoder, or YAMNet.

The built-in branch lives inside BinauralEncoder (trained with the spatial
branch, exported with it). A deployment with more compute swaps in a Whisper
encoder by name or local path through transformers; `WhisperSemanticEncoder`
gives it the same frame grid as the spatial branch (10 frames per second) and
a class head over binaura's vocabulary. Nothing is downloaded: loading is
`local_files_only`, and a missing model is a clear error.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from agent.core.audio import SEMANTIC_SAMPLE_RATE_HZ, check_binaural, resample_to
from agent.core.errors import BinauraError
from agent.core.labels import LABELS


class WhisperSemanticEncoder(nn.Module):
    """(B, n_mels, 3000) Whisper log-mel -> class logits and embeddings at `output_rate_hz`."""

    def __init__(self, encoder: nn.Module, feature_extractor, labels: tuple[str, ...] = LABELS,
                 output_rate_hz: float = 10.0):
        super().__init__()
        self.encoder = encoder
        self.feature_extractor = feature_extractor
        self.labels = labels
        d_model = encoder.config.d_model
        # Whisper's encoder emits one frame per 2 mel hops (20 ms at 16 kHz).
        self.frame_rate_hz = SEMANTIC_SAMPLE_RATE_HZ / feature_extractor.hop_length / 2
        self.pool = int(round(self.frame_rate_hz / output_rate_hz))
        if self.pool < 1 or abs(self.frame_rate_hz / self.pool - output_rate_hz) > 1e-6:
            raise BinauraError(f"Whisper frame rate {self.frame_rate_hz} Hz is not a multiple of "
                               f"{output_rate_hz} Hz")
        self.class_head = nn.Linear(d_model, len(labels))

    def features(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[torch.Tensor, int]:
        """Binaural (2, T) audio -> Whisper input features of the mono mix, and the number of
        output frames the real audio covers (the rest is Whisper's 30 s padding)."""
        audio = check_binaural(audio, sample_rate_hz)
        mono = resample_to(audio.mean(axis=0), sample_rate_hz, SEMANTIC_SAMPLE_RATE_HZ)
        feats = self.feature_extractor(mono, sampling_rate=SEMANTIC_SAMPLE_RATE_HZ, return_tensors="pt")
        n_out = int(len(mono) / SEMANTIC_SAMPLE_RATE_HZ * self.frame_rate_hz) // self.pool
        return feats["input_features"], n_out

    def forward(self, input_features: torch.Tensor, n_out: int | None = None):
        h = self.encoder(input_features).last_hidden_state  # (B, T, D)
        b, t, d = h.shape
        t = t // self.pool * self.pool
        h = h[:, :t].reshape(b, t // self.pool, self.pool, d).mean(2)
        if n_out is not None:
            h = h[:, :n_out]
        return self.class_head(h), h


def load_whisper_encoder(name_or_path: str, labels: tuple[str, ...] = LABELS,
                         output_rate_hz: float = 10.0) -> WhisperSemanticEncoder:
    """A Whisper-style encoder from a local folder or the local Hugging Face cache, never the network."""
    try:
        from transformers import WhisperFeatureExtractor  # noqa: PLC0415
        from transformers.models.whisper.modeling_whisper import WhisperEncoder  # noqa: PLC0415
    except ImportError as e:
        raise BinauraError("loading a Whisper encoder needs transformers (pip install transformers)") from e
    try:
        encoder = WhisperEncoder.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise BinauraError(f"{name_or_path}: no Whisper model found locally (nothing is downloaded): {e}") from e
    try:
        fe = WhisperFeatureExtractor.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError):
        fe = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins)
    if fe.feature_size != encoder.config.num_mel_bins:
        raise BinauraError(f"{name_or_path}: feature extractor has {fe.feature_size} mel bins, the encoder expects "
                           f"{encoder.config.num_mel_bins}")
    return WhisperSemanticEncoder(encoder.eval(), fe, labels, output_rate_hz)


def load_semantic_encoder(spec: str, labels: tuple[str, ...] = LABELS, output_rate_hz: float = 10.0):
    """A pretrained semantic encoder by name: "yamnet" (AudioSet YAMNet, the float32 ONNX that
    `python -m training.models.yamnet_setup --ensure` builds, rebuilt in torch), or a
    Whisper-style encoder by name or local path. Both give (class logits, embeddings) on the
    encoder's frame grid from `features(audio, rate)`."""
    if spec == "yamnet":
        from training.models.yamnet import load_yamnet_semantic  # noqa: PLC0415

        return load_yamnet_semantic(labels=labels, output_rate_hz=output_rate_hz)
    return load_whisper_encoder(spec, labels, output_rate_hz)
