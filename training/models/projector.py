"""The hybrid projector: the encoder's two frame streams -> a few embeddings in the LLM's space.

Inputs per encoder frame (10 per second): the spatial stream (the spatial branch's embedding
and, when `use_seld`, what the encoder decoded: per class its ACCDOA vector, log-distance and
class logit) and the semantic stream (the semantic branch's embedding of the mono mix).

Fusions (the ablation the paper's reviewers asked for, all with the same pooling and output):
- "dense" (the paper's dense fusion, here in DenseNet form): both streams are projected to
  d_model and normalised; each fusion layer reads the concatenation of the streams, their
  product and every earlier fusion layer's output, and the last layer reads all of them.
  Identity and location meet in every layer, which is what binding "the dog" to "on the
  left" needs.
- "concat": the streams concatenated, then a two-layer MLP (the usual LLaVA-style baseline).
- "spatial" / "semantic": one stream only.
Then the frames are average-pooled in time to `n_tokens` (0.5 s each for a 5 s clip at the
default 10), given a learned position per token, and mapped to the LLM's hidden size by a
two-layer MLP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from agent.core.errors import BinauraError

FUSIONS = ("dense", "concat", "spatial", "semantic")


@dataclass
class ProjectorConfig:
    fusion: str = "dense"
    spatial_dim: int = 256
    semantic_dim: int = 192
    seld_dim: int = 85
    use_seld: bool = True
    d_model: int = 256
    dense_layers: int = 2
    n_tokens: int = 10
    out_dim: int = 576
    dropout: float = 0.1

    def validate(self) -> ProjectorConfig:
        problems = []
        if self.fusion not in FUSIONS:
            problems.append(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        for k in ("spatial_dim", "semantic_dim", "d_model", "n_tokens", "out_dim"):
            if getattr(self, k) < 1:
                problems.append(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.dense_layers < 1:
            problems.append(f"dense_layers must be >= 1, got {self.dense_layers}")
        if problems:
            raise BinauraError("projector config: " + "; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ProjectorConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise BinauraError(f"projector config: unknown key(s) {sorted(unknown)}")
        return cls(**d).validate()


def _stream(d_in: int, d: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, d), nn.LayerNorm(d))


class AudioProjector(nn.Module):
    """spatial (B, T, Ds), semantic (B, T, Dm), seld (B, T, S) -> (B, n_tokens, out_dim)."""

    def __init__(self, cfg: ProjectorConfig):
        super().__init__()
        self.cfg = cfg.validate()
        d = cfg.d_model
        spatial_in = cfg.spatial_dim + (cfg.seld_dim if cfg.use_seld else 0)
        if cfg.fusion in ("dense", "spatial"):
            self.spatial = _stream(spatial_in, d)
        if cfg.fusion in ("dense", "semantic"):
            self.semantic = _stream(cfg.semantic_dim, d)
        if cfg.fusion == "dense":
            widths = [3 * d + k * d for k in range(cfg.dense_layers)]
            self.dense = nn.ModuleList(nn.Sequential(nn.Linear(w, d), nn.GELU()) for w in widths)
            self.fuse_out = nn.Linear(3 * d + cfg.dense_layers * d, d)
        elif cfg.fusion == "concat":
            self.concat = nn.Sequential(nn.Linear(spatial_in + cfg.semantic_dim, d), nn.GELU(), nn.Linear(d, d))
        self.drop = nn.Dropout(cfg.dropout)
        self.position = nn.Parameter(torch.zeros(cfg.n_tokens, d))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.out_dim), nn.GELU(),
                                 nn.Linear(cfg.out_dim, cfg.out_dim))

    def forward(self, spatial: torch.Tensor, semantic: torch.Tensor, seld: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        xs = torch.cat([spatial, seld], dim=-1) if cfg.use_seld else spatial
        if cfg.fusion == "dense":
            s, m = self.spatial(xs), self.semantic(semantic)
            feats = [s, m, s * m]
            for layer in self.dense:
                feats.append(layer(torch.cat(feats, dim=-1)))
            h = self.fuse_out(torch.cat(feats, dim=-1))
        elif cfg.fusion == "concat":
            h = self.concat(torch.cat([xs, semantic], dim=-1))
        elif cfg.fusion == "spatial":
            h = self.spatial(xs)
        else:
            h = self.semantic(semantic)
        h = self.drop(h)  # (B, T, d)
        h = nn.functional.adaptive_avg_pool1d(h.transpose(1, 2), cfg.n_tokens).transpose(1, 2)
        return self.out(h + self.position)
