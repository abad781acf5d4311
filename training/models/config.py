"""Model configurations: dataclasses saved inside every checkpoint (whisper's `dims` habit)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from agent.core.errors import ConfigError, check_known_keys
from agent.core.features import SPATIAL_CHANNELS, FeatureConfig
from agent.core.labels import LABELS
from agent.core.tracks import slot_labels, tracks_problem

#: One CNN stage: (output channels, 3x3 convolutions, time pooling, frequency pooling).
Stage = tuple[int, int, int, int]


@dataclass
class BranchConfig:
    """A CNN front end (time x frequency) followed by causal dilated temporal convolutions."""

    in_channels: int
    stages: tuple[Stage, ...]
    d_model: int
    dilations: tuple[int, ...]
    kernel_size: int = 3
    dropout: float = 0.1
    #: width of a per-frame dense path over all channels x bands (0 = none); it sees where a
    #: GCC peak or a spectral notch lies directly, which the pooled CNN only recovers slowly.
    frame_dense: int = 0

    @property
    def time_pool(self) -> int:
        return math.prod(s[2] for s in self.stages)

    @property
    def freq_pool(self) -> int:
        return math.prod(s[3] for s in self.stages)

    def problems(self, name: str, n_bins: int) -> list[str]:
        p = []
        if not self.stages:
            p.append(f"{name}.stages must not be empty")
        for i, s in enumerate(self.stages):
            if len(s) != 4 or min(s) < 1:
                p.append(f"{name}.stages[{i}] must be (channels, convs, pool_t, pool_f) >= 1, got {s}")
        if self.stages and n_bins % self.freq_pool:
            p.append(f"{name}: n_mels={n_bins} must be divisible by the frequency pooling {self.freq_pool}")
        if self.d_model < 4:
            p.append(f"{name}.d_model must be >= 4, got {self.d_model}")
        if self.kernel_size < 1:
            p.append(f"{name}.kernel_size must be >= 1")
        if not 0 <= self.dropout < 1:
            p.append(f"{name}.dropout must be in [0, 1)")
        return p


@dataclass
class EncoderConfig:
    """The joint encoder: a spatial SELD branch and a semantic branch on the same frames."""

    name: str = "small"
    labels: tuple[str, ...] = LABELS
    features: FeatureConfig = field(default_factory=FeatureConfig)
    spatial: BranchConfig = field(default_factory=lambda: BranchConfig(
        in_channels=len(SPATIAL_CHANNELS),
        stages=((32, 1, 5, 2), (64, 2, 1, 2), (128, 1, 1, 2), (128, 1, 1, 2)),
        d_model=256, dilations=(1, 2, 4), frame_dense=256))
    semantic: BranchConfig = field(default_factory=lambda: BranchConfig(
        in_channels=1, stages=((16, 1, 5, 2), (32, 1, 1, 2), (64, 1, 1, 2), (128, 1, 1, 2)),
        d_model=192, dilations=(1, 2)))
    #: polar-angle bins (around the interaural axis) of the direction output
    polar_bins: int = 24
    #: log(distance / 1 m) is predicted; this range clips targets and outputs.
    log_distance_range: tuple[float, float] = (-1.6, 3.0)
    #: output tracks per class (multi-ACCDOA, agent.core.tracks): with N, the activity, lateral,
    #: polar and distance heads give N x C slots (slot = track * C + class), so N sources of one
    #: class can be heard at once; the class logits stay per class. 1 (every shipped encoder) is
    #: left out of `to_dict`, so a one-track config saves exactly as before the option existed.
    tracks: int = 1

    def validate(self) -> EncoderConfig:
        p = self.spatial.problems("spatial", self.features.n_mels)
        p += self.semantic.problems("semantic", self.features.n_mels)
        if self.spatial.in_channels != len(SPATIAL_CHANNELS):
            p.append(f"spatial.in_channels must be {len(SPATIAL_CHANNELS)} ({', '.join(SPATIAL_CHANNELS)})")
        if self.semantic.in_channels != 1:
            p.append("semantic.in_channels must be 1 (mono log-mel)")
        if self.spatial.time_pool != self.semantic.time_pool:
            p.append(f"both branches must pool time alike (frames align), got {self.spatial.time_pool} "
                     f"and {self.semantic.time_pool}")
        if self.polar_bins < 4:
            p.append(f"polar_bins must be >= 4, got {self.polar_bins}")
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            p.append("labels must be distinct and non-empty")
        if problem := tracks_problem(self.tracks):
            p.append(problem)
        if p:
            raise ConfigError(p, "encoder config")
        self.features.validate()
        return self

    @property
    def output_rate_hz(self) -> float:
        return self.features.frame_rate_hz / self.spatial.time_pool

    @property
    def slot_labels(self) -> tuple[str, ...]:
        """The label of each output slot (track * C + class): `labels` once per track."""
        return slot_labels(self.labels, self.tracks)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["tracks"] == 1:  # absent means one track: configs saved before the option read alike
            del d["tracks"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        check_known_keys(cls, d, "encoder config")
        kw = dict(d)
        if "features" in kw:
            kw["features"] = FeatureConfig.from_dict(kw["features"])
        for b in ("spatial", "semantic"):
            if b in kw:
                bd = dict(kw[b])
                bd["stages"] = tuple(tuple(s) for s in bd["stages"])
                bd["dilations"] = tuple(bd["dilations"])
                kw[b] = BranchConfig(**bd)
        if "labels" in kw:
            kw["labels"] = tuple(kw["labels"])
        if "log_distance_range" in kw:
            kw["log_distance_range"] = tuple(kw["log_distance_range"])
        return cls(**kw).validate()


def encoder_small_config() -> EncoderConfig:
    """The shipped default: 2.06 M parameters, 10 output frames per second."""
    return EncoderConfig().validate()


def encoder_tiny_config() -> EncoderConfig:
    """A few thousand parameters: the real code paths, fast enough for unit tests."""
    return EncoderConfig(
        name="tiny",
        spatial=BranchConfig(in_channels=len(SPATIAL_CHANNELS), stages=((8, 1, 1, 4), (16, 1, 5, 4)),
                             d_model=16, dilations=(1, 2), frame_dense=16),
        semantic=BranchConfig(in_channels=1, stages=((4, 1, 1, 4), (8, 1, 5, 4)), d_model=8, dilations=(1,)),
    ).validate()


BUILDERS = {"small": encoder_small_config, "tiny": encoder_tiny_config}
