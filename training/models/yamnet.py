"""YAMNet rebuilt in PyTorch (MobileNet v1 on 96 x 64 log-mel patches), weights from its ONNX.

The network of the original (tensorflow/models, research/audioset/yamnet): a 3x3
convolution with stride 2, then 13 depthwise-separable blocks (3x3 depthwise,
1x1 pointwise, each with ReLU), a global average over time and frequency (the
1024-d embedding) and one linear layer to the 521 AudioSet logits. In the ONNX
graph that set-up builds (training.models.yamnet_setup) batch norm is already
folded into each convolution's weight and bias, so the rebuild has biased
convolutions and no batch norm: train() and eval() compute the same thing
except for the optional dropout of the semantic head below, and every
parameter is trainable. Stride-2 convolutions pad one row and one column at
the end only (TensorFlow's "SAME" on even sizes, as the graph records).

`YamnetSemanticEncoder` gives YAMNet the interface of the Whisper-style semantic
encoder (training.models.semantic): binaural audio -> class logits over
binaura's labels and embeddings on the encoder's 10 Hz frame grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent.core.audio import check_binaural
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.yamnet_features import (
    FRAME_RATE_HZ,
    HOP_SAMPLES,
    N_AUDIOSET_CLASSES,
    N_MELS,
    ONNX_FILE,
    PATCH_FRAMES,
    SILENCE_LOG_MEL,
    WINDOW_SAMPLES,
    YAMNET_SAMPLE_RATE_HZ,
    default_yamnet_dir,
    log_mel,
    to_mono_16k,
)

#: (stride, output channels) of the first convolution and the 13 separable blocks.
LAYERS: tuple[tuple[int, int], ...] = (
    (2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))


class ConvReLU(nn.Module):
    """Conv2d (biased, batch norm folded in) then ReLU; stride 2 pads (0, 1) on both axes."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1):
        super().__init__()
        self.stride = stride
        pad = 0 if (kernel == 1 or stride == 2) else kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return F.relu(self.conv(x))


class Yamnet(nn.Module):
    """(B, 96, 64) or (B, 1, 96, 64) log-mel patches -> embedding (B, D), AudioSet logits (B, 521).

    width scales every layer's channels (1.0 is YAMNet, D = 1024; tests use tiny widths)."""

    def __init__(self, width: float = 1.0, n_classes: int = N_AUDIOSET_CLASSES):
        super().__init__()
        if not 0 < width <= 1:
            raise BinauraError(f"Yamnet width must be in (0, 1], got {width}")
        self.width = width
        ch = [max(1, int(round(c * width))) for _, c in LAYERS]
        layers = [ConvReLU(1, ch[0], 3, LAYERS[0][0])]
        for (stride, _), c_in, c_out in zip(LAYERS[1:], ch[:-1], ch[1:]):
            layers += [ConvReLU(c_in, c_in, 3, stride, groups=c_in), ConvReLU(c_in, c_out, 1, 1)]
        self.layers = nn.Sequential(*layers)
        self.embedding_dim = ch[-1]
        self.classifier = nn.Linear(ch[-1], n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.shape[-1] != N_MELS:
            raise BinauraError(f"Yamnet: expected {N_MELS} mel bands on the last axis, got shape {tuple(x.shape)}")
        return self.layers(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x)
        return emb, self.classifier(emb)


def load_yamnet_from_onnx(path: str | os.PathLike | None = None) -> Yamnet:
    """The float32 YAMNet graph (a folder holding yamnet.onnx, or the file) -> a Yamnet in eval mode.

    Convolutions are read in graph order and checked against the rebuild's shapes, strides,
    groups and pads; the Gemm gives the classifier. Any width built by `Yamnet` loads."""
    try:
        import onnx  # noqa: PLC0415
        from onnx import numpy_helper  # noqa: PLC0415
    except ImportError as e:
        raise BinauraError("loading YAMNet's weights needs onnx (pip install onnx)") from e
    p = Path(path) if path is not None else default_yamnet_dir()
    if p.is_dir():
        p = p / ONNX_FILE
    if not p.is_file():
        raise BinauraError(f"{p}: no YAMNet ONNX; run `python -m training.models.yamnet_setup --ensure` once")
    g = onnx.load(str(p)).graph
    inits = {i.name: np.array(numpy_helper.to_array(i)) for i in g.initializer}  # writable copies
    convs = [n for n in g.node if n.op_type == "Conv"]
    gemms = [n for n in g.node if n.op_type == "Gemm"]
    if len(convs) != 2 * len(LAYERS) - 1 or len(gemms) != 1:
        raise BinauraError(f"{p}: expected {2 * len(LAYERS) - 1} Conv and 1 Gemm nodes (YAMNet), got "
                           f"{len(convs)} and {len(gemms)}")
    width = inits[convs[0].input[1]].shape[0] / LAYERS[0][1]
    model = Yamnet(width=width, n_classes=inits[gemms[0].input[1]].shape[0])
    mods = [m for m in model.layers]
    with torch.no_grad():
        for i, (node, mod) in enumerate(zip(convs, mods)):
            a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
            w, b = inits[node.input[1]], inits[node.input[2]]
            conv = mod.conv
            pads = [0, 0, 1, 1] if mod.stride == 2 else [conv.padding[0]] * 4
            if (tuple(w.shape) != tuple(conv.weight.shape) or list(a.get("strides", [1, 1])) != [mod.stride] * 2
                    or a.get("group", 1) != conv.groups or list(a.get("pads", [0] * 4)) != pads):
                raise BinauraError(f"{p}: Conv {i} ({node.name}) has weight {w.shape}, attributes {a}; the "
                                   f"rebuild expects {tuple(conv.weight.shape)}, stride {mod.stride}, "
                                   f"group {conv.groups}, pads {pads}")
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
        gemm = gemms[0]
        trans_b = {x.name: onnx.helper.get_attribute_value(x) for x in gemm.attribute}.get("transB", 0)
        w = inits[gemm.input[1]]
        model.classifier.weight.copy_(torch.from_numpy(w if trans_b else w.T))
        model.classifier.bias.copy_(torch.from_numpy(inits[gemm.input[2]]))
    return model.eval()


class YamnetSemanticEncoder(nn.Module):
    """Binaural audio -> class logits over `labels` and YAMNet embeddings at `output_rate_hz`.

    Output frame k covers [k, k + 1) / output_rate_hz seconds; it reads the 0.96 s patch that
    ends with that frame's last log-mel frame (causal: earlier audio only, padded with
    silence before the start), so the frames line up with the spatial encoder's."""

    def __init__(self, yamnet: Yamnet, labels: tuple[str, ...] = LABELS, output_rate_hz: float = 10.0,
                 dropout: float = 0.0):
        super().__init__()
        hop = FRAME_RATE_HZ / output_rate_hz
        if abs(hop - round(hop)) > 1e-9 or round(hop) < 1:
            raise BinauraError(f"output rate {output_rate_hz} Hz must divide YAMNet's {FRAME_RATE_HZ} Hz frames")
        self.yamnet = yamnet
        self.labels = labels
        self.hop_frames = int(round(hop))
        self.output_rate_hz = output_rate_hz
        self.dropout = nn.Dropout(dropout)
        self.class_head = nn.Linear(yamnet.embedding_dim, len(labels))

    def features(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[torch.Tensor, int]:
        """Binaural (2, T) audio -> (1, n_out, 96, 64) patches of the mono mix, and n_out."""
        mono = to_mono_16k(check_binaural(audio, sample_rate_hz), sample_rate_hz)
        n_out = int(len(mono) / YAMNET_SAMPLE_RATE_HZ * self.output_rate_hz)
        need = (n_out * self.hop_frames - 1) * HOP_SAMPLES + WINDOW_SAMPLES  # the last frame's end
        m = log_mel(np.pad(mono, (0, max(0, need - len(mono)))))[:n_out * self.hop_frames]
        m = np.concatenate([np.full((PATCH_FRAMES - self.hop_frames, N_MELS), SILENCE_LOG_MEL, np.float32), m])
        view = np.lib.stride_tricks.sliding_window_view(m, PATCH_FRAMES, axis=0)[::self.hop_frames][:n_out]
        return torch.from_numpy(np.ascontiguousarray(view.transpose(0, 2, 1)))[None], n_out

    def forward(self, patches: torch.Tensor, n_out: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 96, 64) -> class logits (B, T, C), embeddings (B, T, 1024)."""
        if n_out is not None:
            patches = patches[:, :n_out]
        b, t = patches.shape[:2]
        emb = self.yamnet.embed(patches.reshape(b * t, *patches.shape[2:])).reshape(b, t, -1)
        return self.class_head(self.dropout(emb)), emb


def load_yamnet_semantic(path: str | os.PathLike | None = None, labels: tuple[str, ...] = LABELS,
                         output_rate_hz: float = 10.0) -> YamnetSemanticEncoder:
    """YAMNet from set-up's float32 ONNX (default folder when path is None) as a semantic encoder."""
    return YamnetSemanticEncoder(load_yamnet_from_onnx(path), labels, output_rate_hz).eval()
