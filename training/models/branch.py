"""One encoder branch: a CNN over (time, frequency), then causal dilated temporal convolutions.

Every time operation has a finite, known reach (`time_context`), so a stream cut
into overlapping windows gives the same frames as the whole file. The branch is
also two parts: a per-frame `front` (CNN, projection, frame-dense path) with a
short reach (`front_context`), and causal temporal blocks that read
`history_frames` earlier front frames: a stream can keep front frames instead of
recomputing them (the exported front/back pair, agent/localize/encoder.py).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from training.models.config import BranchConfig


class ConvStage(nn.Module):
    def __init__(self, c_in: int, c_out: int, n_convs: int, pool_t: int, pool_f: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d((pool_t, pool_f)) if (pool_t, pool_f) != (1, 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.convs(x))


class CausalTemporalBlock(nn.Module):
    """x + W2 GELU(BN(causal dilated conv(x))): looks back (k-1)*d frames, never ahead."""

    def __init__(self, d_model: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.left = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, dilation=dilation, bias=False)
        self.norm = nn.BatchNorm1d(d_model)
        self.act = nn.GELU()
        self.proj = nn.Conv1d(d_model, d_model, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T)
        y = nn.functional.pad(x, (self.left, 0))
        return x + self.drop(self.proj(self.act(self.norm(self.conv(y)))))


class Branch(nn.Module):
    """(B, C, T, F) features -> (B, T // time_pool, d_model) frame embeddings."""

    def __init__(self, cfg: BranchConfig, n_bins: int):
        super().__init__()
        self.cfg = cfg
        stages, c = [], cfg.in_channels
        for c_out, n_convs, pt, pf in cfg.stages:
            stages.append(ConvStage(c, c_out, n_convs, pt, pf))
            c = c_out
        self.cnn = nn.Sequential(*stages)
        self.proj = nn.Linear(c * (n_bins // cfg.freq_pool), cfg.d_model)
        self.frame_dense = None
        if cfg.frame_dense:
            self.frame_dense = nn.Sequential(nn.Linear(cfg.in_channels * n_bins, cfg.frame_dense), nn.GELU(),
                                             nn.Linear(cfg.frame_dense, cfg.d_model))
        self.temporal = nn.Sequential(*[CausalTemporalBlock(cfg.d_model, cfg.kernel_size, d, cfg.dropout)
                                        for d in cfg.dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_temporal(self.front(x))

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """The per-frame part: CNN, projection and frame-dense path -> (B, T', d_model).
        Its reach in time is short (`front_context`); the stateful stream runs it on new
        frames only."""
        h = self.cnn(x)  # (B, C', T', F')
        b, c, t, f = h.shape
        h = self.proj(h.permute(0, 2, 1, 3).reshape(b, t, c * f))
        if self.frame_dense is not None:
            # per input frame over all channels and bands, averaged over each pooled group of frames
            p = self.cfg.time_pool
            x = x[:, :, :t * p].permute(0, 2, 1, 3)  # (B, T, C, F)
            d = self.frame_dense(x.reshape(b, t * p, -1))
            h = h + d.reshape(b, t, p, -1).mean(2)
        return h

    def run_temporal(self, h: torch.Tensor) -> torch.Tensor:
        """The causal temporal blocks on front frames (B, T', d_model): output frame j reads
        front frames j - history_frames(cfg) .. j only."""
        return self.temporal(h.transpose(1, 2)).transpose(1, 2)


def time_context(cfg: BranchConfig) -> tuple[int, int]:
    """(left, right): output frame j depends on input frames [P*j - left, P*j + right],
    P = cfg.time_pool. Walks the layers backwards from one output frame."""
    j = 1000  # any frame far from the edges
    lo = hi = j
    for d in reversed(cfg.dilations):
        lo -= (cfg.kernel_size - 1) * d
    for _c, n_convs, pt, _pf in reversed(cfg.stages):
        lo, hi = lo * pt, hi * pt + pt - 1
        lo, hi = lo - n_convs, hi + n_convs
    p = cfg.time_pool
    return p * j - lo, hi - p * j


def front_context(cfg: BranchConfig) -> tuple[int, int]:
    """(left, right): front frame j depends on input frames [P*j - left, P*j + right], the
    reach of the CNN alone, without the temporal blocks (as `time_context`)."""
    return time_context(dataclasses.replace(cfg, dilations=()))


def history_frames(cfg: BranchConfig) -> int:
    """How many earlier front frames one output frame of the temporal blocks reads."""
    return sum((cfg.kernel_size - 1) * d for d in cfg.dilations)
