"""Scene sampling and rendering, deterministic from (seed, index).

sample_spec draws everything a scene needs (head, room, sources, noise) from a
generator seeded by (seed, index, split), so any slice of a dataset can be
re-rendered alone and gives the same audio. render_scene turns the spec into a
(2, T) binaural signal and its labels.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from scipy.fft import next_fast_len
from scipy.signal import oaconvolve

from agent.core.geometry import great_circle_deg, wrap_azimuth_deg
from agent.core.rotation import HEAD_ORIENTATION_KEY, HeadPath
from agent.core.scene import Scene, SourceLabel
from training.synth.ambisonics import AMBISONIC_ORDER_KEY, AmbisonicHead
from training.synth.config import SynthConfig
from training.synth.device import DEVICE_KEY, apply_device, draw_device
from training.synth.dsp import normalize_rms
from training.synth.heads import Head, label_elevation_deg, make_head
from training.synth.room import (
    RoomGeometry,
    anechoic_ir,
    binaural_rir,
    diffuse_pair_spectra,
    min_rt60_s,
)
from training.synth.sounds import PROCEDURAL, theme_of
from training.synth.speech import speech, voice_of

FADE_S = 0.02
#: Instance seeds below this are training instances; the benchmark draws above it.
HELD_OUT_INSTANCE_BASE = 1 << 40
#: Two sources of one class (SynthConfig.p_same_class) lie at least this far apart: closer, a
#: listener (and the multi-track decoding, DecodeConfig.merge_deg) hears them as one.
SAME_CLASS_SEPARATION_DEG = 30.0
#: At most this many instance seeds are drawn for a procedural/TTS source that would sound as the same
#: sound-maker as an earlier source of its class (the smallest pool, three held-out voices, needs few).
APART_ATTEMPTS = 64


@dataclass
class SourceSpec:
    label: str
    azimuth_deg: float
    elevation_deg: float
    distance_m: float
    onset_s: float
    offset_s: float
    level_db: float
    instance_seed: int
    real: str | None = None  # a real-sounds catalog id (training/synth/realsounds); None: procedural/TTS


@dataclass
class SceneSpec:
    id: str
    seed: int
    index: int
    head: str
    head_seed: int
    room: RoomGeometry | None
    sources: list[SourceSpec]
    snr_db: float
    noise_exponent: float
    output_rms_dbfs: float
    render_seed: int
    extra: dict = field(default_factory=dict)
    head_path: HeadPath | None = None  # None: the head holds still (training/synth/turning.py)


def scene_rng(seed: int, index: int, split: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), zlib.crc32(split.encode())])


def sample_spec(cfg: SynthConfig, seed: int, index: int, scene_id: str | None = None) -> SceneSpec:
    rng = scene_rng(seed, index, cfg.split)
    head = str(rng.choice(cfg.heads))
    n_src = int(rng.integers(cfg.min_sources, cfg.max_sources + 1))
    labels = [str(x) for x in rng.choice(cfg.classes, size=n_src, replace=False)]
    if cfg.p_same_class > 0 and n_src >= 2:  # its own generator: every other draw stays as without it
        same_rng = scene_rng(seed, index, cfg.split + "/same-class")
        if same_rng.random() < cfg.p_same_class:
            i, j = sorted(int(x) for x in same_rng.choice(n_src, size=2, replace=False))
            labels[j] = labels[i]
    # Two sources of one class are two sound-makers (recordings, voices): their own generator again,
    # drawn from only where a source would repeat its class's other one (_apart_instances, draw_real).
    apart_rng = scene_rng(seed, index, cfg.split + "/apart") if len(set(labels)) < n_src else None
    room = None
    if rng.random() < cfg.p_reverberant:
        size = tuple(float(rng.uniform(*r)) for r in cfg.room_size_m)
        listener = (rng.uniform(0.6, size[0] - 0.6), rng.uniform(0.6, size[1] - 0.6),
                    rng.uniform(1.1, min(1.8, size[2] - 0.4)))
        # A large room cannot be as dry as a small one: keep RT60 reachable by its walls.
        rt60 = max(float(rng.uniform(*cfg.rt60_s)), min_rt60_s(size))
        room = RoomGeometry(size, rt60, tuple(float(v) for v in listener),
                            float(rng.uniform(-180, 180)), cfg.max_reflection_order)
    sources: list[SourceSpec] = []
    for label in labels:
        az, el, dist = _place(rng, cfg, room, sources, label_elevation_deg(head, cfg.elevation_deg), label)
        dur = float(min(rng.uniform(*cfg.event_duration_s), cfg.duration_s))
        onset = float(rng.uniform(0.0, max(cfg.duration_s - dur, 0.0)))
        sources.append(SourceSpec(label, az, el, dist, round(onset, 3), round(onset + dur, 3),
                                  float(rng.uniform(*cfg.level_db)), _instance_seed(cfg, rng)))
    head_path = None
    if cfg.p_turning > 0:  # its own generator: every other draw stays as without turning
        from training.synth.turning import sample_head_path  # noqa: PLC0415

        turn_rng = scene_rng(seed, index, cfg.split + "/head-path")
        if turn_rng.random() < cfg.p_turning:
            head_path = sample_head_path(turn_rng, cfg.duration_s)
    extra = {}
    if cfg.p_ambisonic > 0:  # its own generator too (training/synth/ambisonics.py)
        amb_rng = scene_rng(seed, index, cfg.split + "/ambisonic")
        if amb_rng.random() < cfg.p_ambisonic:
            extra[AMBISONIC_ORDER_KEY] = int(amb_rng.integers(cfg.ambisonic_orders[0], cfg.ambisonic_orders[1] + 1))
    if cfg.real_share > 0 or cfg.real_background_share > 0:  # real recordings: their own generator too
        from training.synth.realsounds.draw import draw_real  # noqa: PLC0415

        extra.update(draw_real(cfg, sources, scene_rng(seed, index, cfg.split + "/real"), again=apart_rng))
    if apart_rng is not None:
        _apart_instances(cfg, sources, apart_rng)
    if cfg.p_device_level > 0 or cfg.p_band_limited > 0:  # its own generator (training/synth/device.py)
        device = draw_device(cfg, scene_rng(seed, index, cfg.split + "/device"))
        if device:
            extra[DEVICE_KEY] = device
    return SceneSpec(
        id=scene_id or f"s{index:06d}", seed=seed, index=index, head=head, head_path=head_path,
        head_seed=int(rng.integers(0, 1 << 31)), room=room, sources=sources,
        snr_db=float(rng.uniform(*cfg.snr_db)), noise_exponent=float(rng.uniform(0.5, 2.0)),
        output_rms_dbfs=float(rng.uniform(*cfg.output_rms_dbfs)),
        render_seed=int(rng.integers(0, 1 << 31)), extra=extra,
    )


def _instance_seed(cfg: SynthConfig, rng) -> int:
    """A source's instance seed (its voice, pitch, rhythm, ...), in the held-out range for held-out instances."""
    base = HELD_OUT_INSTANCE_BASE if cfg.held_out_instances else 0
    return base + int(rng.integers(0, 1 << 31))


def sound_maker(label: str, instance_seed: int, held_out: bool) -> object:
    """What a listener takes for one sound-maker in a procedural/TTS source: its TTS voice for
    speech, the theme recording it plays (some alarms and telephones), else the instance itself."""
    rng = np.random.default_rng(instance_seed)
    if label == "speech":
        return voice_of(rng, held_out)
    return theme_of(label, rng) or instance_seed


def _apart_instances(cfg: SynthConfig, sources: list[SourceSpec], rng) -> None:
    """Give a procedural/TTS source that would sound as the same sound-maker as an earlier one of
    its class (one voice twice, the theme recording twice) another instance seed from rng, this
    scene's own generator for it; every other source keeps its seed. A source for which
    APART_ATTEMPTS draws find no other sound-maker keeps its own (a class of one voice)."""
    held = cfg.held_out_instances
    for k, src in enumerate(sources):
        if src.real is not None:
            continue
        taken = {sound_maker(s.label, s.instance_seed, held) for s in sources[:k]
                 if s.label == src.label and s.real is None}
        if sound_maker(src.label, src.instance_seed, held) not in taken:
            continue
        for _attempt in range(APART_ATTEMPTS):
            seed = _instance_seed(cfg, rng)
            if sound_maker(src.label, seed, held) not in taken:
                src.instance_seed = seed
                break


def _place(rng, cfg: SynthConfig, room: RoomGeometry | None, placed: list[SourceSpec], elevation_deg,
           label: str | None = None):
    """Draw a direction (elevation within elevation_deg) and distance, inside the room and
    apart from the placed sources (from one of its own class `label` by at least
    SAME_CLASS_SEPARATION_DEG, also when the room forces the fallback distance)."""
    lo_el, hi_el = np.sin(np.deg2rad(elevation_deg[0])), np.sin(np.deg2rad(elevation_deg[1]))
    same = [s for s in placed if s.label == label]  # empty unless the scene repeats a class

    def apart(az, el) -> bool:
        return not any(great_circle_deg(az, el, s.azimuth_deg, s.elevation_deg) < SAME_CLASS_SEPARATION_DEG
                       for s in same)

    for _attempt in range(200):
        az = float(wrap_azimuth_deg(rng.uniform(-180.0, 180.0)))
        el = float(np.rad2deg(np.arcsin(rng.uniform(lo_el, hi_el))))  # uniform on the sphere band
        dist = float(np.exp(rng.uniform(np.log(cfg.distance_m[0]), np.log(cfg.distance_m[1]))))
        if room is not None and not room.contains(room.to_room(az, el, dist)):
            continue
        if any(great_circle_deg(az, el, s.azimuth_deg, s.elevation_deg) < cfg.min_separation_deg
               for s in placed) or not apart(round(az, 2), round(el, 2)):
            continue
        return round(az, 2), round(el, 2), round(dist, 3)
    # A room too small for the distance range: fall back to the nearest allowed distance.
    while same and not apart(round(az, 2), round(el, 2)):  # never the direction of its own class
        az = float(wrap_azimuth_deg(rng.uniform(-180.0, 180.0)))
        el = float(np.rad2deg(np.arcsin(rng.uniform(lo_el, hi_el))))
    return round(az, 2), round(el, 2), round(cfg.distance_m[0], 3)


def dry_signal(src: SourceSpec, rate_hz: int, held_out: bool) -> np.ndarray:
    """The source's mono signal for its active span, unit RMS x level, with fades."""
    n = max(int(round((src.offset_s - src.onset_s) * rate_hz)), 1)
    rng = np.random.default_rng(src.instance_seed)
    if src.real is not None:
        from training.synth.realsounds.pool import open_real_sounds  # noqa: PLC0415

        x = open_real_sounds().signal(src.real, n, rate_hz, rng)
    elif src.label == "speech":
        x = speech(rng, n, rate_hz, held_out=held_out)
    else:
        x = PROCEDURAL[src.label](rng, n, rate_hz)
    x = normalize_rms(x[:n]) * np.float32(10 ** (src.level_db / 20))
    f = min(int(FADE_S * rate_hz), n // 2)
    if f > 0:
        ramp = np.linspace(0.0, 1.0, f, dtype=np.float32)
        x[:f] *= ramp
        x[-f:] *= ramp[::-1]
    return x


def _diffuse_noise(head: Head, rng, n: int, exponent: float) -> np.ndarray:
    """Background noise (2, n) with power ~ 1/f^exponent and the head's diffuse-field
    interaural coherence, built directly in the frequency domain (unit power per ear)."""
    m = next_fast_len(n, real=True)
    f, pair = diffuse_pair_spectra(head, rng, m)
    shape = np.maximum(f, f[1]) ** (-exponent / 2)
    shape[0] = 0.0
    both = pair * (shape / np.sqrt(np.mean(shape**2))).astype(np.float32)
    out = sfft.irfft(both, m, axis=-1)[:, :n]
    return (out / (np.sqrt(np.mean(out**2, axis=1, keepdims=True)) + 1e-12)).astype(np.float32)


def _convolve(dry: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Mono source (T,) * binaural response (2, M) -> (2, T + M - 1).

    Short (anechoic) responses go through overlap-add; long room responses through
    one FFT of the source shared by both ears.
    """
    if ir.shape[1] < 4096:
        return oaconvolve(dry[None, :], ir, axes=1)
    n = len(dry) + ir.shape[1] - 1
    m = next_fast_len(n, real=True)
    return sfft.irfft(sfft.rfft(dry, m)[None] * sfft.rfft(ir, m, axis=1), m, axis=1)[:, :n]


def render_scene(spec: SceneSpec, cfg: SynthConfig) -> tuple[np.ndarray, Scene]:
    """Render a spec to binaural audio (2, T) float32 and its Scene labels."""
    rate = cfg.sample_rate_hz
    n = int(round(cfg.duration_s * rate))
    rng = np.random.default_rng(spec.render_seed)
    head = make_head(spec.head, rate, np.random.default_rng(spec.head_seed))
    order = spec.extra.get(AMBISONIC_ORDER_KEY)
    heard = AmbisonicHead(head, order) if order else head  # sources through the renderer; noise as before
    mix = np.zeros((2, n), dtype=np.float32)
    for src in spec.sources:
        dry = dry_signal(src, rate, cfg.held_out_instances)
        if spec.head_path is not None and not spec.head_path.is_still:
            from training.synth.turning import render_turning_source  # noqa: PLC0415

            wet = render_turning_source(heard, spec.room, src.azimuth_deg, src.elevation_deg, src.distance_m, dry,
                                        rng, spec.head_path, round(src.onset_s * rate) / rate)
        elif spec.room is None:
            wet = _convolve(dry, anechoic_ir(heard, src.azimuth_deg, src.elevation_deg, src.distance_m))
        else:
            wet = _convolve(dry, binaural_rir(heard, spec.room, src.azimuth_deg, src.elevation_deg, src.distance_m,
                                              rng))
        start = int(round(src.onset_s * rate))
        m = min(wet.shape[1], n - start)
        mix[:, start:start + m] += wet[:, :m]
    sig_power = float(np.mean(mix**2)) + 1e-12
    if spec.extra.get("real_ambience"):  # a real ambience as the diffuse background (realsounds/draw.py)
        from training.synth.realsounds.draw import ambience_noise  # noqa: PLC0415

        noise = ambience_noise(spec.extra["real_ambience"], *head.base.diffuse_coherence, rate, n, rng)
    else:
        noise = _diffuse_noise(head, rng, n, spec.noise_exponent)
    noise *= np.sqrt(sig_power / 10 ** (spec.snr_db / 10) / (np.mean(noise**2) + 1e-12))
    mix += noise
    gain = 10 ** (spec.output_rms_dbfs / 20) / np.sqrt(np.mean(mix**2) + 1e-12)
    peak = np.max(np.abs(mix)) * gain
    if peak > 0.99:  # keep the relative levels, avoid clipping
        gain *= 0.99 / peak
    mix *= gain
    if DEVICE_KEY in spec.extra:
        mix = apply_device(mix, spec.extra[DEVICE_KEY], rate)
    return mix, spec_to_scene(spec, cfg, head)


def spec_to_scene(spec: SceneSpec, cfg: SynthConfig, head: Head | None = None) -> Scene:
    room = None
    if spec.room is not None:
        room = {"rt60_s": round(spec.room.rt60_s, 3), "size_m": [round(v, 2) for v in spec.room.size_m],
                "listener_m": [round(v, 2) for v in spec.room.listener_m],
                "listener_yaw_deg": round(spec.room.yaw_deg, 1)}
    sources = [SourceLabel(s.label, s.azimuth_deg, s.elevation_deg, s.distance_m, s.onset_s, s.offset_s,
                           {"level_db": round(s.level_db, 2), "instance": s.instance_seed,
                            **({"real": s.real} if s.real is not None else {})})
               for s in spec.sources]
    extra = {"seed": spec.seed, "index": spec.index, "split": cfg.split,
             "snr_db": round(spec.snr_db, 2), "head_params": head.params if head else {}}
    if AMBISONIC_ORDER_KEY in spec.extra:
        extra[AMBISONIC_ORDER_KEY] = spec.extra[AMBISONIC_ORDER_KEY]
    if DEVICE_KEY in spec.extra:
        extra[DEVICE_KEY] = dict(spec.extra[DEVICE_KEY])
    if spec.extra.get("real_ambience"):
        extra["real_ambience"] = spec.extra["real_ambience"]
    if spec.head_path is not None:  # source positions stay in the head frame at t = 0
        extra[HEAD_ORIENTATION_KEY] = spec.head_path.to_json()
    return Scene(spec.id, f"audio/{spec.id}.wav", cfg.sample_rate_hz, cfg.duration_s, sources, room,
                 spec.head, extra)
