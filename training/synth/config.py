"""Synthesis configuration: one dataclass, validated with every problem reported together."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from agent.core.audio import MIN_SAMPLE_RATE_HZ, SAMPLE_RATE_HZ
from agent.core.errors import ConfigError, check_known_keys
from agent.core.labels import LABELS
from training.synth.heads import (
    ALL_HEADS,
    HELD_OUT_HEADS,
    HELD_OUT_HUMAN_HEADS,
    MEASURED_HEAD_NAMES,
    SCALED_KEMAR,
    SCALED_RANGE,
    TRAIN_HEADS,
    allowed_in_training,
    is_head_name,
    is_horizontal_only,
)

MAX_SOURCES = 4
PRESETS = ("train", "bench", "demo", "turning", "bench-real")
#: Classes with held-out real recordings in the core sound kit (`make sounds`; knocking and fan
#: have at most one recording, which the split gives to training). A kit without one of them
#: stops the synthesis of this split with an error (realsounds/draw.py).
REAL_BENCH_CLASSES = ("speech", "music", "bird", "dog", "siren", "car_horn", "alarm", "telephone", "doorbell",
                      "engine", "footsteps", "glass_breaking", "keyboard", "water", "clapping")


@dataclass
class SynthConfig:
    """What scenes to draw. Ranges are [low, high] and sampled uniformly."""

    split: str = "train"  # "train" or "bench": salts the seeds, picks heads/instances
    sample_rate_hz: int = SAMPLE_RATE_HZ
    duration_s: float = 5.0
    min_sources: int = 1
    max_sources: int = 3
    classes: tuple[str, ...] = LABELS
    heads: tuple[str, ...] = TRAIN_HEADS
    held_out_instances: bool = False
    p_reverberant: float = 0.6
    rt60_s: tuple[float, float] = (0.1, 1.0)
    room_size_m: tuple[tuple[float, float], ...] = ((3.0, 10.0), (3.0, 8.0), (2.5, 4.0))
    max_reflection_order: int = 3
    distance_m: tuple[float, float] = (0.5, 5.0)
    elevation_deg: tuple[float, float] = (-40.0, 60.0)
    min_separation_deg: float = 25.0
    event_duration_s: tuple[float, float] = (1.5, 5.0)
    level_db: tuple[float, float] = (-6.0, 6.0)  # per-source level at 1 m, relative
    snr_db: tuple[float, float] = (10.0, 35.0)  # sources vs diffuse background noise
    output_rms_dbfs: tuple[float, float] = (-30.0, -20.0)
    sample_format: str = "int16"
    p_turning: float = 0.0  # share of scenes whose head moves (training/synth/turning.py)
    p_ambisonic: float = 0.0  # share of scenes rendered through ambisonics (training/synth/ambisonics.py)
    ambisonic_orders: tuple[int, int] = (1, 3)  # [low, high] ambisonic order drawn per such scene
    # Real recordings (training/synth/realsounds, `make sounds`): the share of sources drawn
    # from the real-sounds kit (the train side for training, held-out for held_out_instances),
    # the draw weight of band-limited (< 32 kHz) files against full-band ones, and the share
    # of scenes whose diffuse background is a real ambience (rain, crowd, wind, ...).
    real_share: float = 0.0
    real_band_limited_weight: float = 0.25
    real_background_share: float = 0.0
    # Draw the train side's real recordings from one half of it only ("a" or "b",
    # realsounds.split.train_half; "" for all): a model learns on one half and is chosen on
    # scenes of the other, recordings it never heard, without touching the held-out side.
    real_train_half: str = ""
    # The recording device (training/synth/device.py): the share of scenes whose level is drawn
    # from device_rms_dbfs and clipped at full scale instead of scaled down, and the share
    # recorded at one of band_limited_rates_hz and upsampled back as the runtime does.
    p_device_level: float = 0.0
    device_rms_dbfs: tuple[float, float] = (-65.0, -5.0)
    p_band_limited: float = 0.0
    band_limited_rates_hz: tuple[int, ...] = (16_000, 22_050, 24_000)
    # Two sources of one class (two people talking; what a multi-track encoder learns from): the
    # share of scenes with two or more sources in which one class is drawn for two of them, at
    # least SAME_CLASS_SEPARATION_DEG apart (training/synth/scenes.py; its own generator, so at
    # 0 every scene is as before the option existed), as two sound-makers: two real recordings (or
    # talkers), two TTS voices, wherever the class's pool holds two (a pool of one plays twice).
    p_same_class: float = 0.0
    extra: dict = field(default_factory=dict)

    def validate(self) -> SynthConfig:
        p: list[str] = []
        if self.split not in ("train", "bench", "demo"):
            p.append(f"split must be 'train', 'bench' or 'demo', got {self.split!r}")
        if self.sample_rate_hz < MIN_SAMPLE_RATE_HZ:
            p.append(f"sample_rate_hz must be >= {MIN_SAMPLE_RATE_HZ}, got {self.sample_rate_hz}")
        if not self.duration_s > 0:
            p.append(f"duration_s must be > 0, got {self.duration_s}")
        if not 1 <= self.min_sources <= self.max_sources <= MAX_SOURCES:
            p.append(f"need 1 <= min_sources <= max_sources <= {MAX_SOURCES}, got "
                     f"{self.min_sources}..{self.max_sources}")
        unknown = [c for c in self.classes if c not in LABELS]
        if unknown:
            p.append(f"unknown class(es) {unknown}; expected any of {list(LABELS)}")
        if len(set(self.classes)) < self.max_sources:
            p.append(f"need at least max_sources={self.max_sources} distinct classes, got {len(set(self.classes))}")
        bad_heads = [h for h in self.heads if not is_head_name(h)]
        if bad_heads or not self.heads:
            p.append(f"heads must name some of {list(ALL_HEADS + MEASURED_HEAD_NAMES)} or {SCALED_KEMAR}S ({SCALED_RANGE[0]} <= S <= "
                     f"{SCALED_RANGE[1]}), got {list(self.heads)}")
        if self.split == "train" and any(not allowed_in_training(h) for h in self.heads if is_head_name(h)):
            p.append(f"held-out head(s) {HELD_OUT_HEADS + HELD_OUT_HUMAN_HEADS} and scaled heads ({SCALED_KEMAR}S, "
                     f"for evaluation) may not be used for training, got {list(self.heads)}")
        flat = [h for h in self.heads if is_horizontal_only(h)]
        if flat and not _contains_zero(self.elevation_deg):
            p.append(f"horizontal-plane head(s) {flat} place sources at elevation 0, outside elevation_deg "
                     f"{list(self.elevation_deg)}")
        if not 0.0 <= self.p_ambisonic <= 1.0:
            p.append(f"p_ambisonic must be in [0, 1], got {self.p_ambisonic}")
        self._range(p, "ambisonic_orders", self.ambisonic_orders, 1, 3)
        if not 0.0 <= self.p_reverberant <= 1.0:
            p.append(f"p_reverberant must be in [0, 1], got {self.p_reverberant}")
        if not 0.0 <= self.p_turning <= 1.0:
            p.append(f"p_turning must be in [0, 1], got {self.p_turning}")
        for name in ("real_share", "real_band_limited_weight", "real_background_share", "p_device_level",
                     "p_band_limited", "p_same_class"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                p.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.real_train_half not in ("", "a", "b"):
            p.append(f"real_train_half must be '', 'a' or 'b' (a half of the kit's train side), got "
                     f"{self.real_train_half!r}")
        elif self.real_train_half and self.held_out_instances:
            p.append("real_train_half picks a half of the kit's train side; held_out_instances draws the held-out "
                     "side: set one of them")
        self._range(p, "device_rms_dbfs", self.device_rms_dbfs, -90.0, 20.0)
        rates = self.band_limited_rates_hz  # read only when band limiting is on (a 16 kHz scene has no lower rate)
        if self.p_band_limited > 0 and (not isinstance(rates, tuple | list) or not rates or not all(
                isinstance(r, int) and 8_000 <= r < self.sample_rate_hz for r in rates)):
            p.append(f"band_limited_rates_hz must list integer rates in [8000, sample_rate_hz="
                     f"{self.sample_rate_hz}), got {rates!r}")
        self._range(p, "rt60_s", self.rt60_s, 0.05, 3.0)
        self._range(p, "distance_m", self.distance_m, 0.2, 20.0)
        self._range(p, "elevation_deg", self.elevation_deg, -90.0, 90.0)
        self._range(p, "event_duration_s", self.event_duration_s, 0.1, 3600.0)
        self._range(p, "level_db", self.level_db, -60.0, 60.0)
        self._range(p, "snr_db", self.snr_db, -20.0, 100.0)
        self._range(p, "output_rms_dbfs", self.output_rms_dbfs, -80.0, -3.0)
        if len(self.room_size_m) != 3:
            p.append("room_size_m must hold 3 ranges (x, y, z)")
        else:
            for i, r in enumerate(self.room_size_m):
                self._range(p, f"room_size_m[{i}]", r, 2.0, 100.0)
        if not 0 <= self.max_reflection_order <= 10:
            p.append(f"max_reflection_order must be in 0..10, got {self.max_reflection_order}")
        if not 0 <= self.min_separation_deg <= 90:
            p.append(f"min_separation_deg must be in [0, 90], got {self.min_separation_deg}")
        if self.sample_format not in ("int16", "int24", "float32"):
            p.append(f"sample_format must be int16, int24 or float32, got {self.sample_format!r}")
        if p:
            raise ConfigError(p, "synthesis config")
        return self

    @staticmethod
    def _range(p, name, r, lo, hi):
        try:
            a, b = float(r[0]), float(r[1])
        except (TypeError, ValueError, IndexError):
            p.append(f"{name} must be a [low, high] pair, got {r!r}")
            return
        if not (lo <= a <= b <= hi):
            p.append(f"{name} must satisfy {lo} <= low <= high <= {hi}, got [{a}, {b}]")

    @classmethod
    def from_dict(cls, d: dict) -> SynthConfig:
        check_known_keys(cls, d, "synthesis config")
        kw = {}
        for k, v in d.items():
            kw[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        return cls(**kw).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _contains_zero(r) -> bool:
    try:
        return float(r[0]) <= 0.0 <= float(r[1])
    except (TypeError, ValueError, IndexError):
        return True  # _range reports a malformed range


def preset(name: str) -> SynthConfig:
    """Named configurations: train (all training heads), bench (frozen benchmark), demo,
    turning (the benchmark's turning split: every head moves or holds by a drawn path),
    bench-real (the benchmark's real split: every source a held-out real recording from the
    sound kit, on the training head and on the held-out human head, anechoic and reverberant)."""
    if name == "train":
        return SynthConfig().validate()
    if name == "bench":
        return SynthConfig(split="bench", heads=("kemar-mit",) + HELD_OUT_HEADS,
                           held_out_instances=True, p_reverberant=0.5).validate()
    if name == "demo":
        return SynthConfig(split="demo", heads=("kemar-mit",), min_sources=3, max_sources=3,
                           classes=("siren", "dog", "telephone", "speech", "bird"),
                           p_reverberant=1.0, rt60_s=(0.3, 0.4), distance_m=(1.0, 3.5),
                           elevation_deg=(-10.0, 30.0), event_duration_s=(3.5, 5.0),
                           snr_db=(25.0, 30.0), min_separation_deg=50.0).validate()
    if name == "turning":
        return SynthConfig(split="bench", heads=("kemar-mit",), held_out_instances=True, p_reverberant=0.5,
                           p_turning=1.0).validate()
    if name == "bench-real":
        return SynthConfig(split="bench", heads=("kemar-mit", "ic-subject2"), held_out_instances=True,
                           p_reverberant=0.5, real_share=1.0, classes=REAL_BENCH_CLASSES).validate()
    raise ConfigError([f"unknown preset {name!r}; expected {', '.join(PRESETS)}"], "preset")
