"""Which spatial cues an input can carry: from its sample rate, and from its content.

Left/right comes from the differences between the ears (time below about 1.5 kHz, level
above), which survive any rate binaura takes. Front/back and elevation come from the pinna:
the notches and peaks the outer ear cuts into the spectrum lie mostly at 5-16 kHz (the first
pinna notch moves from about 6 to 10 kHz as a source rises). An input that carries nothing
up there gives the encoder nothing to tell front from back or up from down with: on the
benchmark, 16 kHz input scores 36 deg and 19% front/back confusions (issue 22).

Two rules:

- **Rate.** A recording sampled below `FULL_BAND_MIN_RATE_HZ` (32 kHz: Nyquist below 16 kHz,
  the top of the pinna band) cannot hold those cues, whatever binaura resamples it to.
  Its bandwidth is its Nyquist frequency.
- **Content.** A recording made at 16 kHz and upsampled before it reaches binaura has a
  48 kHz header and nothing above 8 kHz. Over the frames that hold sound (their 0.5-8 kHz
  band at or above `SIGNAL_FLOOR_DBFS`), the energy from `HIGH_BAND_HZ` up to Nyquist is
  compared with the energy of `REFERENCE_BAND_HZ`; at or below `HIGH_BAND_MAX_DB` (-58 dB)
  the input is band-limited. The band starts at 10 kHz, not 8: a resampler's transition band
  passes a 16 kHz recording's energy to about 9 kHz. 16-bit rounding noise (white, so it
  fills the high band of any 16-bit file) is taken out first when every sample lies on the
  16-bit grid. Measured with this module on the 600 synthetic and 120 real-sound benchmark
  scenes, as written (48 kHz, 16-bit) and resampled 48 -> 16 -> 48 kHz (scipy
  resample_poly, 16-bit), table in docs/listen.md: resampled, -68 dB (median; 95th
  percentile -64 dB), also 10-30 dB quieter; as written, -32 and -29 dB (5th percentile -54
  and -50 dB). -58 dB lies midway: it catches 595 of 597 and 120 of 120 resampled scenes
  and flags 22 of 597 and 3 of 120 as written, scenes whose sounds themselves stop near
  8 kHz, which content alone cannot tell from resampled ones (on the synthetic 22 the
  encoder still confused front and back for only 1 of 25 sources: false alarms). A recording
  from 22.05 or 24 kHz, upsampled, keeps sound to 11-12 kHz and is mostly not caught by its
  content; at its own rate the rate rule flags it.

Silence is not band-limited: with less than `MIN_SIGNAL_S` of frames that hold sound the
content rule has nothing to judge, so only the rate rule applies (nothing is flagged that
was not measured). The rule speaks of the whole input, not of one source in it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Lowest rate whose Nyquist frequency (16 kHz) covers the pinna band (5-16 kHz).
FULL_BAND_MIN_RATE_HZ = 32_000
#: Where the pinna's notches and peaks lie (Hz): what front/back and elevation are heard from.
PINNA_BAND_HZ = (5_000.0, 16_000.0)
#: The band every recording at 16 kHz or more carries (Hz): the content rule's reference.
REFERENCE_BAND_HZ = (500.0, 8_000.0)
#: The content rule's band starts here (Hz) and runs to Nyquist: above a resampler's
#: transition band, which passes a 16 kHz recording's energy to about 9 kHz.
HIGH_BAND_HZ = 10_000.0
#: At or below this ratio (dB) of high-band to reference-band energy the input is band-limited.
HIGH_BAND_MAX_DB = -58.0
#: A frame holds sound when its reference band's mean square (ears averaged) is at least this
#: (dB re a full-scale square, 1.0): well above 16-bit quantisation noise (about -106 dBFS in
#: that band) and a board's self-noise, below a quiet room through an ordinary gain.
SIGNAL_FLOOR_DBFS = -70.0
#: The content rule judges only with at least this much audio (s) in frames that hold sound.
MIN_SIGNAL_S = 0.5
#: Analysis frame length (s); rounded up to a power of two of samples (1024 at 48 kHz).
FRAME_S = 0.02
#: The step of 16-bit samples read as floats (soundfile, PortAudio: int / 32768).
PCM16_STEP = 1.0 / 32768
_PINNA = f"{PINNA_BAND_HZ[0] / 1000:g}-{PINNA_BAND_HZ[1] / 1000:g} kHz"


@dataclass(frozen=True)
class CueLimits:
    """What an input can tell. front_back / elevation: whether the input can carry the cues
    (False: an answer about front/back or up/down is a guess). bandwidth_hz: the highest
    frequency the input carries: its Nyquist frequency, or lower where its content shows less
    (the frequency above which its energy is `HIGH_BAND_MAX_DB` below the reference band).
    reason: why a cue is missing, in one sentence; None when nothing is."""

    front_back: bool
    elevation: bool
    bandwidth_hz: float
    reason: str | None = None

    @property
    def limited(self) -> bool:
        return not (self.front_back and self.elevation)

    def to_json(self) -> dict[str, Any]:
        """{"front_back", "elevation", "bandwidth_hz" (rounded to 1 Hz), "reason"}."""
        d = asdict(self)
        d["bandwidth_hz"] = round(float(self.bandwidth_hz))
        return d

    def note(self) -> str | None:
        """One plain sentence for a person, or None when nothing is missing."""
        if not self.limited:
            return None
        return (f"Note: this recording carries no sound above {self.bandwidth_hz / 1000:.0f} kHz, "
                f"so I can't reliably tell front from back or up from down.")


def rate_limits(rate_hz: int) -> CueLimits:
    """The rate rule alone: what a recording at `rate_hz` can carry, whatever it holds."""
    nyquist = rate_hz / 2
    if rate_hz >= FULL_BAND_MIN_RATE_HZ:
        return CueLimits(True, True, nyquist)
    return CueLimits(False, False, nyquist,
                     f"the input is sampled at {rate_hz} Hz, so it holds nothing above {nyquist / 1000:g} kHz, "
                     f"where most of the pinna's cues lie ({_PINNA})")


class BandMeter:
    """The content rule over a stream: push audio (any block sizes) at the input's own rate,
    read `limits()` at any time. Memory: one frame of audio and one spectrum; cost: one FFT
    of about 20 ms per 20 ms of audio."""

    def __init__(self, rate_hz: int):
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = int(rate_hz)
        self.n_fft = 1 << int(np.ceil(np.log2(FRAME_S * rate_hz)))
        self._window = np.hanning(self.n_fft)
        f = np.fft.rfftfreq(self.n_fft, 1.0 / rate_hz)
        self._freqs = f
        self._ref = (f >= REFERENCE_BAND_HZ[0]) & (f < REFERENCE_BAND_HZ[1])
        # one-sided power spectrum -> mean square per channel (Parseval, Hann-windowed)
        self._ms_scale = 2.0 / (self.n_fft * float(np.sum(self._window ** 2)))
        self._floor = 10.0 ** (SIGNAL_FLOOR_DBFS / 10.0)
        self._spectrum = np.zeros(f.shape, np.float64)  # summed over frames that hold sound
        self._held = np.zeros((0, 0), np.float64)
        # 16-bit rounding noise (step q: white, q^2 / 12 per sample) expected in each bin of a frame
        self._pcm16_noise = PCM16_STEP ** 2 / 12.0 * float(np.sum(self._window ** 2))
        self.pcm16 = True  # every sample so far lies on the 16-bit grid
        self.n_frames = 0
        self.n_signal_frames = 0

    @property
    def audio_s(self) -> float:
        """Seconds of audio analysed so far (whole frames)."""
        return self.n_frames * self.n_fft / self.rate_hz

    @property
    def n_pending(self) -> int:
        """Samples pushed that do not yet fill a frame (0 <= n_pending < n_fft)."""
        return self._held.shape[-1]

    @property
    def signal_s(self) -> float:
        """Seconds of audio in frames that hold sound."""
        return self.n_signal_frames * self.n_fft / self.rate_hz

    def push(self, audio: np.ndarray) -> None:
        """audio: (C, n) or (n,) samples, full scale 1.0."""
        x = np.asarray(audio, np.float64)
        x = x[None] if x.ndim == 1 else x
        if self.pcm16 and x.size:
            steps = x / PCM16_STEP
            self.pcm16 = bool(np.array_equal(steps, np.round(steps)))
        if self._held.shape[0] != x.shape[0]:
            self._held = np.zeros((x.shape[0], 0), np.float64)
        x = np.concatenate([self._held, x], axis=-1)
        n = x.shape[-1] // self.n_fft
        self._held = x[:, n * self.n_fft:]
        if n == 0:
            return
        frames = x[:, :n * self.n_fft].reshape(x.shape[0], n, self.n_fft) * self._window
        power = (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(axis=0)  # (n, bins), ears averaged
        ref_ms = power[:, self._ref].sum(axis=1) * self._ms_scale
        loud = ref_ms >= self._floor
        self._spectrum += power[loud].sum(axis=0)
        self.n_frames += n
        self.n_signal_frames += int(loud.sum())

    def push_until(self, audio: np.ndarray, audio_s: float, signal_s: float = MIN_SIGNAL_S) -> int | None:
        """Push `audio` frame by frame until `audio_s` of audio, `signal_s` of it holding sound,
        has been analysed: how many of its samples that took (the rest is left out), or None
        when it all went in short of that. Frame by frame, the point does not depend on how
        a stream is cut into blocks."""
        x = np.asarray(audio)
        x = x[None] if x.ndim == 1 else x
        i = 0
        while not (self.audio_s >= audio_s and self.signal_s >= signal_s):
            if i >= x.shape[-1]:
                return None
            step = self.n_fft - self.n_pending
            self.push(x[:, i:i + step])
            i += step
        return i

    def spectrum(self) -> np.ndarray:
        """Power per bin summed over the frames that hold sound (ears averaged), less the
        16-bit rounding noise when every sample lay on the 16-bit grid: that noise is white,
        so a quiet 16-bit file upsampled from 16 kHz would otherwise show it as sound above
        8 kHz (at a 0.5-8 kHz level of -45 dBFS it alone reaches -58 dB)."""
        if not self.pcm16:
            return self._spectrum
        return np.maximum(self._spectrum - self.n_signal_frames * self._pcm16_noise, 0.0)

    def high_band_db(self) -> float | None:
        """Energy above HIGH_BAND_HZ relative to the reference band (dB), over the frames that
        hold sound; None while there is less than MIN_SIGNAL_S of them or no high band."""
        high = self._freqs >= HIGH_BAND_HZ
        if self.signal_s < MIN_SIGNAL_S or not high.any():
            return None
        sp = self.spectrum()
        ref = sp[self._ref].sum()
        return float(10.0 * np.log10(max(sp[high].sum(), ref * 1e-12) / ref))  # floored at -120 dB

    def bandwidth_hz(self) -> float:
        """The lowest frequency above which the energy is HIGH_BAND_MAX_DB or more below the
        reference band's (Nyquist while nothing was measured)."""
        sp = self.spectrum()
        ref = sp[self._ref].sum()
        if self.signal_s < MIN_SIGNAL_S or ref <= 0:
            return self.rate_hz / 2
        tail = np.cumsum(sp[::-1])[::-1]  # energy from each bin up
        below = np.nonzero(tail <= ref * 10.0 ** (HIGH_BAND_MAX_DB / 10.0))[0]
        return float(self._freqs[below[0]]) if len(below) else self.rate_hz / 2

    def limits(self) -> CueLimits:
        """The rate rule, then the content rule over what was pushed so far."""
        by_rate = rate_limits(self.rate_hz)
        if by_rate.limited:
            return by_rate
        ratio_db = self.high_band_db()
        if ratio_db is None or ratio_db > HIGH_BAND_MAX_DB:
            return by_rate
        bw = min(self.bandwidth_hz(), HIGH_BAND_HZ)
        return CueLimits(False, False, bw,
                         f"the input carries no sound above about {bw / 1000:.0f} kHz (above "
                         f"{HIGH_BAND_HZ / 1000:g} kHz its energy is {-ratio_db:.0f} dB below that at "
                         f"{REFERENCE_BAND_HZ[0] / 1000:g}-{REFERENCE_BAND_HZ[1] / 1000:g} kHz: recorded at "
                         f"a lower rate and resampled, or sounds with nothing higher), where most of the "
                         f"pinna's cues lie ({_PINNA})")


def cue_limits(audio: np.ndarray, rate_hz: int) -> CueLimits:
    """What a whole recording can carry: audio (C, n) or (n,) at `rate_hz`, full scale 1.0
    (analysed 10 s at a time: memory stays a few MB however long the recording)."""
    meter = BandMeter(rate_hz)
    step = 10 * int(rate_hz)
    for i in range(0, max(np.shape(audio)[-1], 1), step):
        meter.push(audio[..., i:i + step])
    return meter.limits()
