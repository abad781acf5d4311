"""PortAudio input devices: list them, pick one from `mic[:DEVICE]`, re-scan them.

A device is named by its PortAudio index (`mic:3`) or by a case-insensitive part of its
name (`mic:pulse`, `mic:USB`); an exact name wins over partial matches, several partial
matches are refused (the message lists them). Every refusal lists the input devices there
are, with their channel counts, so the user can pick one without another tool.

PortAudio scans devices once, when it is initialized (at `import sounddevice`): a device
that appears later (a PulseAudio server started after the import, a USB microphone plugged
in) is only seen after `refresh_devices()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from agent.core.audio import MIN_SAMPLE_RATE_HZ, N_CHANNELS
from agent.core.errors import BinauraError


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can record. default_rate_hz: what the device runs at
    unless asked otherwise (binaura captures at it: no resampling in the driver)."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    default_rate_hz: int

    def __str__(self) -> str:
        return (f"[{self.index}] {self.name} ({self.hostapi}, {self.max_input_channels} in, "
                f"{self.default_rate_hz} Hz)")


def portaudio() -> ModuleType:
    """The `sounddevice` module (PortAudio), imported on first use so that the agent imports
    on machines without an audio stack; a missing library is one clear BinauraError."""
    try:
        import sounddevice  # noqa: PLC0415
    except OSError as e:  # sounddevice raises OSError when libportaudio is not installed
        raise BinauraError(f"cannot load PortAudio for microphone capture ({e}); "
                           "install it (Debian: apt-get install libportaudio2)") from e
    except ImportError as e:
        raise BinauraError("microphone capture needs the sounddevice package "
                           "(pip install 'binaura[agent]')") from e
    return sounddevice


def refresh_devices(backend: ModuleType | None = None) -> None:
    """Re-scan PortAudio's devices (terminate and re-initialize it). PortAudio closes every
    stream of the process when it terminates, so call this only while none is open."""
    sd = backend or portaudio()
    sd._terminate()  # sounddevice's documented way to re-scan (its FAQ); no public API exists
    sd._initialize()


def input_devices(backend: ModuleType | None = None) -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    sd = backend or portaudio()
    hostapis = [h["name"] for h in sd.query_hostapis()]
    out = []
    for d in sd.query_devices():
        if int(d["max_input_channels"]) > 0:
            api = hostapis[d["hostapi"]] if 0 <= d["hostapi"] < len(hostapis) else "?"
            out.append(InputDevice(int(d["index"]), str(d["name"]), api, int(d["max_input_channels"]),
                                   int(round(float(d["default_samplerate"])))))
    return out


def format_devices(devices: list[InputDevice]) -> str:
    if not devices:
        return "no input devices (is a microphone connected, and is the user allowed to record?)"
    return "input devices: " + "; ".join(str(d) for d in devices)


def _default_index(sd: ModuleType) -> int | None:
    try:
        return int(sd.query_devices(kind="input")["index"])
    except Exception:  # noqa: BLE001 - PortAudioError or ValueError: no default input device
        return None


def resolve_input_device(spec: str | int | None, backend: ModuleType | None = None) -> InputDevice:
    """The input device that `spec` names: None = the system default, an int (or a string of
    digits) = a PortAudio index, other text = part of a device name. It must record at least
    two channels (L, R). Raises BinauraError listing the input devices otherwise."""
    sd = backend or portaudio()
    devices = input_devices(sd)
    listing = format_devices(devices)
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec.strip())
    if spec is None:
        idx = _default_index(sd)
        found = [d for d in devices if d.index == idx]
        if not found:
            raise BinauraError(f"no default input device; name one with --source mic:DEVICE. {listing}")
        dev = found[0]
    elif isinstance(spec, int):
        found = [d for d in devices if d.index == spec]
        if not found:
            raise BinauraError(f"input device index {spec} does not exist or cannot record. {listing}")
        dev = found[0]
    elif isinstance(spec, str) and spec.strip():
        key = spec.strip().lower()
        exact = [d for d in devices if d.name.lower() == key]
        partial = [d for d in devices if key in d.name.lower()]
        found = exact or partial
        if not found:
            raise BinauraError(f"no input device matches {spec!r}. {listing}")
        if len(found) > 1:
            raise BinauraError(f"{spec!r} matches several input devices: "
                               f"{'; '.join(str(d) for d in found)}; name one exactly or by index")
        dev = found[0]
    else:
        raise BinauraError(f"a device is named by index or by part of its name, got {spec!r}. {listing}")
    if dev.max_input_channels < N_CHANNELS:
        raise BinauraError(f"input device {dev} records {dev.max_input_channels} channel(s); binaura needs "
                           f"{N_CHANNELS} (L, R ears). {listing}")
    return dev


def check_capture_rate(dev: InputDevice, rate_hz: int) -> int:
    """The capture rate, checked against the audio contract's minimum."""
    if rate_hz < MIN_SAMPLE_RATE_HZ:
        raise BinauraError(f"input device {dev} would capture at {rate_hz} Hz, below the minimum "
                           f"{MIN_SAMPLE_RATE_HZ} Hz (interaural and pinna cues need the bandwidth); "
                           f"ask for a higher rate")
    return int(rate_hz)
