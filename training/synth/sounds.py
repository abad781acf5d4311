"""Procedural, seeded generators for the everyday sound classes.

Each generator takes (rng, n_samples, rate_hz) and returns a mono signal of
exactly n_samples, varying pitch, timbre, rhythm and level from rng. The
instance parameters (a dog's voice, a siren's pattern) come from rng alone, so
a held-out instance seed range gives held-out instances. Speech comes from
training.synth.speech (espeak-ng / flite); a few classes also draw on the
freedesktop sound theme when it is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.synth.dsp import (
    bandpass,
    coloured_noise,
    envelope_adsr,
    exp_decay,
    harmonic_tone,
    highpass,
    lowpass,
    place,
)

Generator = Callable[[np.random.Generator, int, int], np.ndarray]
FREEDESKTOP_DIR = Path("/usr/share/sounds/freedesktop/stereo")
#: The theme recording an instance of these classes plays in THEME_SHARE of the instances
#: (_theme_instance, the generator's first draw); the others are procedural.
THEME_RECORDINGS = {"alarm": "alarm-clock-elapsed.oga", "telephone": "phone-incoming-call.oga"}
THEME_SHARE = 0.25


def _repeat_events(rng, n, rate, make_event, gap_s: tuple[float, float], first_s=(0.0, 0.2)):
    out = np.zeros(n)
    t = rng.uniform(*first_s)
    while int(t * rate) < n:
        ev = make_event()
        place(out, ev, int(t * rate))
        t += len(ev) / rate + rng.uniform(*gap_s)
    return out


def music(rng, n, rate):
    """Melody over chords with a random additive timbre, key, tempo and rhythm."""
    beat_s = 60.0 / rng.uniform(70, 150)
    root = 220.0 * 2 ** (rng.integers(-5, 7) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12]) if rng.random() < 0.6 else np.array([0, 2, 3, 5, 7, 8, 10, 12])
    timbre = rng.uniform(0, 1, 8) ** rng.uniform(1, 3) / np.arange(1, 9) ** rng.uniform(0.5, 1.5)
    out = np.zeros(n)
    t = 0.0
    degree = 0
    while int(t * rate) < n:
        dur = beat_s * rng.choice([0.5, 1, 1, 2])
        degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(scale) - 1))
        f = root * 2 ** (scale[degree] / 12) * 2
        m = int(dur * rate)
        env = envelope_adsr(m, rate, 0.01, 0.1, rng.uniform(0.3, 0.8), min(0.1, dur / 3))
        place(out, harmonic_tone(f, m, rate, timbre) * env, int(t * rate))
        if rng.random() < 0.5:  # a chord tone underneath
            fb = root * 2 ** (scale[(degree + 2) % len(scale)] / 12)
            place(out, 0.5 * harmonic_tone(fb, m, rate, timbre[:4]) * env, int(t * rate))
        t += dur
    return out


def bird(rng, n, rate):
    """Chirps and trills: fast frequency sweeps between 2 and 8 kHz."""
    f_lo = rng.uniform(1800, 4000)
    f_hi = f_lo * rng.uniform(1.3, 2.2)
    chirp_s = rng.uniform(0.03, 0.12)
    up = rng.random() < 0.5

    def phrase():
        k = rng.integers(3, 12)
        seg = []
        for _ in range(k):
            m = int(chirp_s * rng.uniform(0.7, 1.3) * rate)
            sweep = np.linspace(f_lo, f_hi, m) if up else np.linspace(f_hi, f_lo, m)
            seg.append(harmonic_tone(sweep, m, rate, [1.0, 0.2]) * np.hanning(m))
            seg.append(np.zeros(int(rng.uniform(0.01, 0.06) * rate)))
        return np.concatenate(seg)

    return _repeat_events(rng, n, rate, phrase, (0.3, 1.2))


def dog(rng, n, rate):
    """Barks: short harmonic bursts with a falling pitch, shaped by a nasal formant."""
    f0 = rng.uniform(250, 650)
    formant = rng.uniform(700, 1600)
    bark_s = rng.uniform(0.12, 0.3)

    def bark():
        m = int(bark_s * rng.uniform(0.8, 1.2) * rate)
        glide = f0 * np.linspace(1.15, 0.8, m)
        amps = 1.0 / np.arange(1, 16)
        tone = harmonic_tone(glide, m, rate, amps) + 0.3 * rng.standard_normal(m)
        tone = bandpass(tone, rate, formant * 0.5, formant * 2.5)
        return tone * envelope_adsr(m, rate, 0.005, 0.05, 0.6, bark_s / 2)

    return _repeat_events(rng, n, rate, bark, (0.15, 0.9))


def siren(rng, n, rate):
    """Emergency siren: wail (slow sweep), yelp (fast sweep) or hi-lo two-tone."""
    t = np.arange(n) / rate
    kind = rng.choice(["wail", "yelp", "hilo"])
    lo, hi = rng.uniform(550, 800), rng.uniform(1200, 1700)
    if kind == "wail":
        f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * t / rng.uniform(2.5, 5)))
    elif kind == "yelp":
        f = lo + (hi - lo) * np.mod(t * rng.uniform(3, 6), 1.0)
    else:
        f = np.where(np.mod(t * rng.uniform(0.8, 1.5), 1.0) < 0.5, lo * 1.1, lo * 1.45)
    return harmonic_tone(f, n, rate, [1.0, 0.4, 0.25, 0.1, 0.05])


def car_horn(rng, n, rate):
    """Two-note horn: harmonic-rich tones around 350-500 Hz, short honks or one long blast."""
    f1 = rng.uniform(330, 480)
    f2 = f1 * rng.uniform(1.2, 1.3)
    amps = 1.0 / np.arange(1, 25) ** 0.8

    def honk():
        m = int(rng.uniform(0.2, 1.0) * rate)
        x = harmonic_tone(f1, m, rate, amps) + harmonic_tone(f2, m, rate, amps)
        return bandpass(x, rate, 300, 4000) * envelope_adsr(m, rate, 0.01, 0.02, 0.9, 0.03)

    return _repeat_events(rng, n, rate, honk, (0.1, 0.6))


def alarm(rng, n, rate):
    """Beeping alarm: 2-4 kHz square-ish beeps in on/off patterns (or the theme's alarm clock)."""
    theme = _theme_instance(rng, THEME_RECORDINGS["alarm"], n, rate)
    if theme is not None:
        return theme
    f = rng.uniform(2000, 4000)
    on_s, off_s = rng.uniform(0.05, 0.25), rng.uniform(0.05, 0.3)
    group = rng.integers(1, 5)
    amps = [1, 0, 1 / 3, 0, 1 / 5] if rng.random() < 0.5 else [1.0]

    def beeps():
        parts = []
        for _ in range(group):
            m = int(on_s * rate)
            parts += [harmonic_tone(f, m, rate, amps) * envelope_adsr(m, rate, 0.003, 0.01, 1, 0.005),
                      np.zeros(int(off_s * rate))]
        return np.concatenate(parts)

    return _repeat_events(rng, n, rate, beeps, (0.2, 0.6))


def telephone(rng, n, rate):
    """Ringing phone: a bell-like two-tone trill in a ring cadence, or the theme's ringtone."""
    theme = _theme_instance(rng, THEME_RECORDINGS["telephone"], n, rate)
    if theme is not None:
        return theme
    f1 = rng.uniform(400, 1000)
    f2 = f1 * rng.uniform(1.08, 1.3)
    trill_hz = rng.uniform(15, 25)
    ring_s, pause_s = rng.uniform(0.8, 2.0), rng.uniform(0.4, 1.5)

    def ring():
        m = int(ring_s * rate)
        t = np.arange(m) / rate
        gate = (np.sin(2 * np.pi * trill_hz * t) > 0).astype(float)
        x = harmonic_tone(f1, m, rate, [1, 0.3, 0.1]) + harmonic_tone(f2, m, rate, [1, 0.3, 0.1])
        return x * (0.3 + 0.7 * gate) * envelope_adsr(m, rate, 0.01, 0.01, 1, 0.02)

    return _repeat_events(rng, n, rate, ring, (pause_s, pause_s * 1.2))


def _bell(rng, f, m, rate, tau_s):
    # Inharmonic partials of a struck bell/chime (ratios of a tubular chime).
    ratios = np.array([1.0, 2.76, 5.40, 8.93])
    amps = np.array([1.0, 0.5, 0.25, 0.12]) * rng.uniform(0.7, 1.3, 4)
    t = np.arange(m) / rate
    x = sum(a * np.sin(2 * np.pi * f * r * t) * np.exp(-t * r / tau_s) for r, a in zip(ratios, amps)
            if f * r < rate / 2 * 0.9)
    return x


def doorbell(rng, n, rate):
    """Ding-dong: two (or three) struck chime notes a third or so apart."""
    f_hi = rng.uniform(600, 1100)
    f_lo = f_hi / 2 ** (rng.integers(3, 6) / 12)
    tau = rng.uniform(0.4, 1.0)
    notes = [f_hi, f_lo] if rng.random() < 0.7 else [f_hi, f_hi * 2 ** (-2 / 12), f_lo]

    def dingdong():
        step = rng.uniform(0.35, 0.6)
        m = int((step * len(notes) + 3 * tau) * rate)
        out = np.zeros(m)
        for i, f in enumerate(notes):
            place(out, _bell(rng, f, m, rate, tau), int(i * step * rate))
        return out

    return _repeat_events(rng, n, rate, dingdong, (0.3, 1.5))


def _impact(rng, rate, f_res, tau_s, noise_ms, m_s=0.25):
    m = int(m_s * rate)
    t = np.arange(m) / rate
    body = np.sin(2 * np.pi * f_res * t) * np.exp(-t / tau_s)
    click = np.zeros(m)
    k = int(noise_ms / 1000 * rate)
    click[:k] = rng.standard_normal(k) * np.exp(-np.arange(k) / (k / 4))
    return body + 0.6 * highpass(click, rate, 800)


def knocking(rng, n, rate):
    """Knuckles on a door: groups of 2-5 damped wooden impacts."""
    f_res = rng.uniform(120, 350)
    spacing = rng.uniform(0.12, 0.28)

    def knocks():
        k = rng.integers(2, 6)
        out = np.zeros(int((k * spacing + 0.3) * rate))
        for i in range(k):
            hit = _impact(rng, rate, f_res * rng.uniform(0.95, 1.05), rng.uniform(0.015, 0.04), 4)
            place(out, hit * rng.uniform(0.7, 1.0), int(i * spacing * rng.uniform(0.9, 1.1) * rate))
        return out

    return _repeat_events(rng, n, rate, knocks, (0.6, 2.0))


def footsteps(rng, n, rate):
    """Walking: heel thud plus a filtered scuff, every 0.4-0.7 s with small jitter."""
    period = rng.uniform(0.4, 0.7)
    f_res = rng.uniform(60, 140)
    scuff_band = rng.uniform(800, 2500)
    out = np.zeros(n)
    t = rng.uniform(0, 0.3)
    while int(t * rate) < n:
        step = _impact(rng, rate, f_res, 0.03, 2, 0.2)
        m = len(step)
        scuff = bandpass(rng.standard_normal(m), rate, scuff_band / 2, scuff_band * 2) * exp_decay(m, rate, 0.04)
        place(out, (step + rng.uniform(0.3, 0.8) * scuff) * rng.uniform(0.7, 1.0), int(t * rate))
        t += period * rng.uniform(0.92, 1.08)
    return out


def clapping(rng, n, rate):
    """Hand claps: sharp band-limited noise bursts at 2-6 per second, one or a few people."""
    people = rng.integers(1, 4)
    out = np.zeros(n)
    for _ in range(people):
        rate_hz = rng.uniform(2, 6)
        centre = rng.uniform(1000, 2500)
        t = rng.uniform(0, 0.3)
        while int(t * rate) < n:
            m = int(0.06 * rate)
            burst = bandpass(rng.standard_normal(m), rate, centre / 1.8, centre * 1.8)
            place(out, burst * exp_decay(m, rate, rng.uniform(0.006, 0.015)), int(t * rate))
            t += 1 / rate_hz * rng.uniform(0.9, 1.1)
    return out


def engine(rng, n, rate):
    """Combustion engine: firing harmonics with wandering rpm, roughness and intake noise."""
    t = np.arange(n) / rate
    f_fire = rng.uniform(25, 70) * (1 + 0.15 * np.sin(2 * np.pi * t / rng.uniform(2, 6) + rng.uniform(0, 6)))
    amps = rng.uniform(0.3, 1.0, 12) / np.arange(1, 13) ** 0.7
    x = harmonic_tone(f_fire, n, rate, amps)
    x *= 1 + 0.3 * np.sin(2 * np.pi * f_fire.mean() / 2 * t)  # cylinder imbalance
    rumble = lowpass(coloured_noise(rng, n, 1.0), rate, rng.uniform(300, 900))
    return x + 0.5 * rumble


def water(rng, n, rate):
    """Running water: dense rising bubble chirps (Minnaert resonances) over hiss."""
    out = 0.3 * bandpass(coloured_noise(rng, n, 0.5), rate, 300, 6000)
    n_bubbles = int(n / rate * rng.uniform(80, 250))
    for _ in range(n_bubbles):
        f = rng.uniform(500, 4000)
        m = int(rng.uniform(0.005, 0.03) * rate)
        glide = f * np.linspace(1.0, rng.uniform(1.1, 1.6), m)
        b = np.sin(2 * np.pi * np.cumsum(glide) / rate) * exp_decay(m, rate, m / rate / 3)
        place(out, b * rng.uniform(0.2, 1.0), int(rng.integers(0, n)))
    return out


def fan(rng, n, rate):
    """Fan or wind: broadband noise with slow swells; a fan adds blade-pass hum."""
    t = np.arange(n) / rate
    x = coloured_noise(rng, n, rng.uniform(0.8, 1.8))
    x = lowpass(x, rate, rng.uniform(1500, 6000))
    swell = 1 + rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * t / rng.uniform(1.5, 5) + rng.uniform(0, 6))
    if rng.random() < 0.6:  # electric fan: blade-pass tone
        bpf = rng.uniform(40, 160)
        x = x + rng.uniform(0.2, 0.6) * harmonic_tone(bpf, n, rate, [1, 0.5, 0.3, 0.2])
        swell = 1 + 0.05 * (swell - 1)
    return x * swell


def glass_breaking(rng, n, rate):
    """Glass shattering: an impact crack then many bright, decaying shard tinkles."""
    out = np.zeros(n)

    def shatter():
        m = int(rng.uniform(0.6, 1.5) * rate)
        ev = np.zeros(m)
        k = int(0.02 * rate)
        ev[:k] += highpass(rng.standard_normal(k), rate, 2000) * np.linspace(1, 0, k) * 2
        for _ in range(int(rng.uniform(20, 60))):
            f = rng.uniform(2500, min(14000, rate / 2 * 0.9))
            mm = int(rng.uniform(0.02, 0.2) * rate)
            tt = np.arange(mm) / rate
            shard = np.sin(2 * np.pi * f * tt) * np.exp(-tt / rng.uniform(0.01, 0.06))
            onset = int(rng.exponential(0.15) * rate)
            place(ev, shard * rng.uniform(0.1, 0.8), onset)
        return ev

    t = rng.uniform(0, 0.3)
    while int(t * rate) < n:
        ev = shatter()
        place(out, ev, int(t * rate))
        t += len(ev) / rate + rng.uniform(0.8, 2.5)
    return out


def keyboard(rng, n, rate):
    """Typing: short resonant key clicks at irregular 80-250 ms intervals, occasional space bar."""
    f_key = rng.uniform(2000, 5000)
    out = np.zeros(n)
    t = rng.uniform(0, 0.2)
    while int(t * rate) < n:
        m = int(0.02 * rate)
        click = bandpass(rng.standard_normal(m), rate, f_key / 2, f_key * 1.5) * exp_decay(m, rate, 0.003)
        if rng.random() < 0.15:
            click = click + _impact(rng, rate, rng.uniform(150, 300), 0.01, 1, 0.02)[:m]
        place(out, click * rng.uniform(0.5, 1.0), int(t * rate))
        t += rng.uniform(0.08, 0.25) if rng.random() > 0.08 else rng.uniform(0.4, 1.0)
    return out


def theme_of(label: str, rng: np.random.Generator) -> str | None:
    """The theme recording an instance of the class plays, read from its generator before any
    other draw (as the generator itself does); None: a procedural instance."""
    name = THEME_RECORDINGS.get(label)
    return name if name is not None and rng.random() < THEME_SHARE else None


def _theme_instance(rng, name: str, n: int, rate: int, p: float = THEME_SHARE) -> np.ndarray | None:
    """With probability p, the theme recording (pitch-varied, looped to n); else None.

    Both draws happen whether or not the theme is installed, so the generator's
    random stream (and every later parameter) does not depend on the machine.
    """
    use, pitch = rng.random() < p, rng.uniform(0.9, 1.1)
    theme = _theme_sound(name, rate) if use else None
    return None if theme is None else _loop(_pitch(theme, pitch), n)


def _theme_sound(name: str, rate: int) -> np.ndarray | None:
    """A freedesktop sound-theme file as mono at rate, or None when the theme is absent."""
    from training.synth.assets import packed  # noqa: PLC0415

    stand_in = packed()
    path = stand_in.theme_file(name) if stand_in is not None else FREEDESKTOP_DIR / name
    if not path.is_file():
        return None
    key = (name, rate)
    if key not in _THEME_CACHE:
        import soundfile as sf  # noqa: PLC0415
        from scipy.signal import resample_poly  # noqa: PLC0415

        data, r = sf.read(str(path), dtype="float64", always_2d=True)
        x = data.mean(axis=1)
        if r != rate:
            g = np.gcd(int(r), rate)
            x = resample_poly(x, rate // g, int(r) // g)
        _THEME_CACHE[key] = x
    return _THEME_CACHE[key]


_THEME_CACHE: dict[tuple[str, int], np.ndarray] = {}


def _pitch(x: np.ndarray, factor: float) -> np.ndarray:
    """Resample-based pitch (and speed) change by factor."""
    idx = np.arange(0, len(x) - 1, factor)
    return np.interp(idx, np.arange(len(x)), x)


def _loop(x: np.ndarray, n: int) -> np.ndarray:
    reps = int(np.ceil(n / max(len(x), 1)))
    return np.tile(x, reps)[:n]


PROCEDURAL: dict[str, Generator] = {
    "music": music, "bird": bird, "dog": dog, "siren": siren, "car_horn": car_horn,
    "alarm": alarm, "telephone": telephone, "doorbell": doorbell, "knocking": knocking,
    "footsteps": footsteps, "clapping": clapping, "engine": engine, "water": water,
    "fan": fan, "glass_breaking": glass_breaking, "keyboard": keyboard,
}
