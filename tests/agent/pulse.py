"""A real audio path for tests: a PulseAudio null sink whose monitor is what `mic:pulse` hears.

    with pulse_null_sink() as pa:          # or a fixture on null_sink_or_skip()
        mic = MicSource(pa.device)         # "pulse": ALSA's pulse PCM, through PortAudio
        mic.start()                        # capture first: the monitor only hears what plays later
        pa.play(audio_2xT, 48_000)         # paplay into the sink, in real time

The chain is the one a user's microphone goes through: PortAudio -> ALSA -> the `pulse` PCM
(Debian libasound2-plugins) -> PulseAudio -> the null sink's monitor source (made the
default source, which the pulse PCM records). Nothing is mocked.

The server: if one answers (`pactl info`), it is used and left running. Otherwise one is
started for the test, private to it: `pulseaudio -n` (no default.pa: no hardware modules,
no D-Bus, nothing else loaded) in the foreground as a child process, with its runtime,
state and home in a temp folder and one unix socket with anonymous auth; this works as
root without --system (which needs a `pulse` user and D-Bus). PULSE_SERVER points this
process and its children (paplay, a `binaura listen` subprocess) at it. Teardown unloads
the sink, restores the default source, stops a server it started, and restores the env.

A server that cannot be reached or started raises PulseUnavailable with the reason;
`null_sink_or_skip()` turns that into a skip, or a failure when $CI is set (CI installs the
packages, so there the real path must run).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

#: What `make setup` installs for this path (Makefile DEBS).
DEBIAN_PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins"
#: PortAudio's name for ALSA's pulse PCM: `--source mic:pulse`.
PORTAUDIO_DEVICE = "pulse"
START_TIMEOUT_S = 10.0


class PulseUnavailable(RuntimeError):
    """PulseAudio cannot run here; the message says why."""


@dataclass
class PulseSink:
    sink: str  # the null sink's name (play into it)
    rate_hz: int  # the sink's rate
    server: str  # the PULSE_SERVER clients use ("" when the default lookup found it)
    started_server: bool  # True when this helper started the server (and will stop it)
    workdir: Path
    device: str = PORTAUDIO_DEVICE  # the PortAudio input device that records the monitor
    _players: list = field(default_factory=list)

    @property
    def monitor(self) -> str:
        return f"{self.sink}.monitor"

    def play(self, audio: np.ndarray, rate_hz: int, wait: bool = True) -> subprocess.Popen:
        """Play (2, T) float32 audio (L, R) into the sink, in real time (paplay). wait=False
        returns at once with the running paplay (wait() on it); either way it is stopped
        at teardown if still running."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise ValueError(f"play() takes (2, T) audio with channels L, R, got shape {audio.shape}")
        path = self.workdir / f"play-{len(self._players)}.wav"
        sf.write(path, audio.T, int(rate_hz), subtype="FLOAT")
        p = subprocess.Popen(["paplay", f"--device={self.sink}", "--channel-map=front-left,front-right", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._players.append(p)
        if wait:
            _, err = p.communicate(timeout=audio.shape[1] / rate_hz + 15)
            if p.returncode != 0:
                raise RuntimeError(f"paplay failed ({p.returncode}): {err.strip()}")
        return p


def _pactl(*args: str, timeout_s: float = 5.0) -> subprocess.CompletedProcess:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=timeout_s)


def _server_answers() -> bool:
    try:
        return _pactl("info").returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    """A private PulseAudio in the foreground (a child we can stop); returns it and its address."""
    run, state = workdir / "run", workdir / "state"
    run.mkdir()
    state.mkdir()
    sock = run / "native"
    env = {**os.environ, "HOME": str(workdir), "XDG_RUNTIME_DIR": str(run), "XDG_CONFIG_HOME": str(workdir),
           "PULSE_RUNTIME_PATH": str(run), "PULSE_STATE_PATH": str(state)}
    env.pop("PULSE_SERVER", None)
    log = open(workdir / "pulseaudio.log", "w")  # noqa: SIM115 - the server writes it while it runs
    cmd = ["pulseaudio", "-n", "--daemonize=no", "--system=no", "--exit-idle-time=-1", "--use-pid-file=no",
           "--disallow-exit=yes", "--disable-shm=yes", "--log-target=stderr",  # no shm: containers may lack it
           "-L", f"module-native-protocol-unix socket={sock} auth-anonymous=1"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    address = f"unix:{sock}"
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            break
        if sock.exists() and _pactl("--server", address, "info").returncode == 0:
            return proc, address
        time.sleep(0.05)
    _stop(proc)
    tail = (workdir / "pulseaudio.log").read_text(errors="replace").strip().splitlines()[-8:]
    raise PulseUnavailable(f"pulseaudio did not start (exit {proc.returncode}): " + " | ".join(tail))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _portaudio_sees(device: str) -> bool:
    """Make PortAudio (if this process loaded it before the server ran) re-scan, then look."""
    from agent.capture.devices import input_devices, refresh_devices  # noqa: PLC0415

    if "sounddevice" in sys.modules and not any(d.name == device for d in input_devices()):
        refresh_devices()  # PortAudio lists a PCM only if it could open it at initialization
    return any(d.name == device and d.max_input_channels >= 2 for d in input_devices())


@contextmanager
def pulse_null_sink(rate_hz: int = 48_000, sink: str | None = None) -> Iterator[PulseSink]:
    """A stereo null sink at rate_hz whose monitor is the default source; see the module doc."""
    missing = [b for b in ("pulseaudio", "pactl", "paplay") if shutil.which(b) is None]
    if missing:
        raise PulseUnavailable(f"{', '.join(missing)} not installed (Debian: {DEBIAN_PACKAGES}; make setup installs them)")
    if not Path("/usr/share/alsa/alsa.conf.d/pulse.conf").exists() and not Path("/etc/alsa/conf.d/50-pulseaudio.conf").exists():
        raise PulseUnavailable(f"ALSA has no pulse PCM (Debian: libasound2-plugins; part of {DEBIAN_PACKAGES})")
    workdir = Path(tempfile.mkdtemp(prefix="binaura-pulse-"))
    old_env = os.environ.get("PULSE_SERVER")
    proc = None
    module = None
    old_source = None
    pa = None
    sink = sink or f"binaura_test_{os.getpid()}"
    try:
        if _server_answers():
            address = old_env or ""
        else:
            proc, address = _start_server(workdir)
            os.environ["PULSE_SERVER"] = address  # this process (ALSA's pulse PCM) and its children
        r = _pactl("load-module", "module-null-sink", f"sink_name={sink}", f"rate={rate_hz}", "channels=2",
                   "channel_map=front-left,front-right", "format=float32le",
                   "sink_properties=device.description=binaura-test")
        if r.returncode != 0:
            raise PulseUnavailable(f"cannot load module-null-sink: {r.stderr.strip()}")
        module = r.stdout.strip()
        got = _pactl("get-default-source")
        old_source = got.stdout.strip() if got.returncode == 0 else None
        r = _pactl("set-default-source", f"{sink}.monitor")
        if r.returncode != 0:
            raise PulseUnavailable(f"cannot make {sink}.monitor the default source: {r.stderr.strip()}")
        if not _portaudio_sees(PORTAUDIO_DEVICE):
            raise PulseUnavailable(f"PortAudio lists no {PORTAUDIO_DEVICE!r} input device although the server runs "
                                   f"(ALSA's pulse PCM: Debian libasound2-plugins)")
        pa = PulseSink(sink, rate_hz, address, proc is not None, workdir)
        yield pa
    finally:
        for p in pa._players if pa is not None else []:
            if p.poll() is None:
                p.kill()
                p.wait()
        if old_source and old_source != f"{sink}.monitor" and proc is None:
            _pactl("set-default-source", old_source)
        if module:
            _pactl("unload-module", module)
        if proc is not None:
            _stop(proc)
        if old_env is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = old_env
        shutil.rmtree(workdir, ignore_errors=True)


def null_sink_or_skip(rate_hz: int = 48_000) -> Iterator[PulseSink]:
    """For a test module's fixture: a null sink, or a skip naming why PulseAudio cannot run
    here (a failure when $CI is set: CI installs the packages, the real path must run).

        @pytest.fixture(scope="module")
        def sink():
            yield from null_sink_or_skip()
    """
    try:
        with pulse_null_sink(rate_hz) as pa:
            yield pa
    except PulseUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"the real audio path must run on CI: {e}")
        pytest.skip(f"PulseAudio unavailable: {e}")
