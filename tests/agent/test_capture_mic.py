"""MicSource's bookkeeping against a stand-in PortAudio that runs in real time: device choice,
drops, driver overflows, a device that vanishes and comes back, close() from another thread.
(The real PortAudio path, through PulseAudio, is tests/agent/test_capture_pulse.py.)

The stand-in's "room" is a clock: room sample i has the value i * 2**-24 (exact in float32)
in both channels, so every delivered sample says which moment of the room it is. A source
whose stream clock tells room time keeps `room index - stream position` constant across
drops, overflows and outages."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from agent.capture import MicSource, Source
from agent.core.errors import BinauraError

RATE = 16_000
BLOCK_S = 0.02
BLOCK = int(RATE * BLOCK_S)
UNIT = 2.0 ** -24


class FakePortAudio:
    """The slice of sounddevice's API MicSource uses. `plugged=False` makes open fail and a
    running stream end (mode "error": PortAudio reports it) or go silent (mode "stall")."""

    def __init__(self, devices=None, default_input=1):
        self.devices = devices if devices is not None else [
            dict(name="Built-in Mic", max_input_channels=1, default_samplerate=48_000.0),
            dict(name="USB Ears", max_input_channels=2, default_samplerate=float(RATE)),
            dict(name="USB Ears Monitor", max_input_channels=2, default_samplerate=44_100.0),
            dict(name="Speakers", max_input_channels=0, default_samplerate=48_000.0),
        ]
        for i, d in enumerate(self.devices):
            d.update(index=i, hostapi=0)
        self.default_input = default_input
        self.t0 = time.monotonic()
        self.plugged = True
        self.lose_mode = "error"
        self.opens: list[float] = []  # wall time of every open attempt
        self.skip_next_s = 0.0  # a driver overflow: this much room time lost before the next block
        self.InputStream = lambda **kw: FakeStream(self, **kw)

    def query_hostapis(self):
        return [dict(name="FakeAPI")]

    def query_devices(self, device=None, kind=None):
        if kind == "input" and device is None:
            if self.default_input is None:
                raise ValueError("No input device")
            return self.devices[self.default_input]
        return list(self.devices)

    def check_input_settings(self, **kw):
        pass

    def room_index(self, t):
        return int((t - self.t0) * RATE)


class FakeStream:
    def __init__(self, pa, device, samplerate, blocksize, channels, dtype, callback, finished_callback):
        pa.opens.append(time.monotonic())
        if not pa.plugged:
            raise RuntimeError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        assert (samplerate, channels, dtype) == (RATE, 2, "float32")
        self.pa, self.n, self.cb, self.fin = pa, blocksize, callback, finished_callback
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        pa = self.pa
        i = pa.room_index(time.monotonic())  # the first block starts now, in room time
        while not self.stopped.is_set():
            if pa.skip_next_s:
                i += int(pa.skip_next_s * RATE)
                overflow, pa.skip_next_s = True, 0.0
            else:
                overflow = False
            wait = pa.t0 + (i + self.n) / RATE - time.monotonic()  # a block is delivered once complete
            if wait > 0:
                time.sleep(wait)
            if not pa.plugged:
                if pa.lose_mode == "error":
                    self.fin()
                return
            block = (np.arange(i, i + self.n, dtype=np.float64) * UNIT).astype(np.float32)
            self.cb(np.stack([block, block], axis=1), self.n, None, SimpleNamespace(input_overflow=overflow))
            i += self.n

    def abort(self):
        self.stopped.set()

    def close(self):
        self.stopped.set()


def room(block):
    """The room index of each sample of a non-gap block (channel L; R must agree)."""
    np.testing.assert_array_equal(block.samples[0], block.samples[1])
    return np.round(block.samples[0].astype(np.float64) / UNIT).astype(np.int64)


def offsets(blocks):
    """room index - stream position of every audio block's first sample."""
    return [int(room(b)[0]) - round(b.t_s * RATE) for b in blocks if not b.gap]


def collect(src, until):
    out = []
    for b in src.blocks():
        out.append(b)
        if until(out):
            break
    return out


def check_clock(blocks):
    pos = 0
    for b in blocks:
        assert round(b.t_s * RATE) == pos and b.rate_hz == RATE
        pos += b.n
        if b.gap:
            assert not b.samples.any()
        else:
            assert np.all(np.diff(room(b)) == 1)  # within a block the room is contiguous


# -- choosing the device -----------------------------------------------------------------------
def test_device_by_name_part_exact_name_index_or_default():
    pa = FakePortAudio()
    assert MicSource("USB Ears", backend=pa).device.index == 1  # exact beats "USB Ears Monitor"
    assert MicSource("monitor", backend=pa).device.index == 2  # any case, any part
    assert MicSource(2, backend=pa).device.index == MicSource("2", backend=pa).device.index == 2
    mic = MicSource(backend=pa)
    assert mic.device.index == 1 and mic.rate_hz == RATE and mic.live and isinstance(mic, Source)
    assert MicSource("monitor", backend=pa).rate_hz == 44_100  # the device's own default rate
    assert "USB Ears [1, FakeAPI], 16000 Hz, 2 of 2 input channels" in mic.describe()


@pytest.mark.parametrize("spec,expected", [
    ("Kinect", "no input device matches 'Kinect'"),
    ("usb", "'usb' matches several input devices"),
    ("Built-in", "records 1 channel(s); binaura needs 2 (L, R ears)"),
    (3, "input device index 3 does not exist or cannot record"),  # Speakers: outputs only
    (9, "input device index 9 does not exist"),
])
def test_refusals_list_the_input_devices(spec, expected):
    with pytest.raises(BinauraError) as e:
        MicSource(spec, backend=FakePortAudio())
    msg = str(e.value)
    assert expected in msg
    if "several" not in msg:
        assert ("input devices: [0] Built-in Mic (FakeAPI, 1 in, 48000 Hz); [1] USB Ears (FakeAPI, 2 in, 16000 Hz); "
                "[2] USB Ears Monitor (FakeAPI, 2 in, 44100 Hz)") in msg and "Speakers" not in msg


def test_no_device_at_all_and_no_default_and_a_slow_device_are_refused():
    with pytest.raises(BinauraError, match=r"no default input device.*no input devices \(is a microphone connected"):
        MicSource(backend=FakePortAudio(devices=[], default_input=None))
    with pytest.raises(BinauraError, match="no default input device; name one with --source mic:DEVICE"):
        MicSource(backend=FakePortAudio(default_input=None))
    slow = [dict(name="Phone line", max_input_channels=2, default_samplerate=8_000.0)]
    with pytest.raises(BinauraError, match="would capture at 8000 Hz, below the minimum 16000 Hz"):
        MicSource(backend=FakePortAudio(devices=slow, default_input=0))
    assert MicSource(backend=FakePortAudio(devices=slow, default_input=0), rate_hz=RATE).rate_hz == RATE


# -- the stream --------------------------------------------------------------------------------
def test_blocks_carry_the_room_in_order_on_a_contiguous_clock():
    mic = MicSource("USB Ears", block_s=BLOCK_S, backend=FakePortAudio())
    blocks = collect(mic, lambda out: len(out) == 15)
    mic.close()
    check_clock(blocks)
    assert all(b.n == BLOCK and not b.gap for b in blocks)
    assert len(set(offsets(blocks))) == 1  # no sample lost or repeated between blocks
    c = mic.counters()
    assert c["samples_out"] >= 15 * BLOCK and c["gap_samples"] == c["queue_overflows"] == c["device_lost"] == 0


def test_a_full_queue_drops_whole_blocks_and_fills_their_exact_time():
    mic = MicSource("USB Ears", block_s=BLOCK_S, queue_blocks=3, backend=FakePortAudio())
    blocks = []
    for b in mic.blocks():
        blocks.append(b)
        if len(blocks) == 2:
            time.sleep(0.3)  # the consumer stalls for 15 blocks; the queue holds 3
        if sum(not x.gap for x in blocks) == 8:
            break
    mic.close()
    check_clock(blocks)
    c = mic.counters()
    assert c["queue_overflows"] >= 8 and c["gap_samples"] == c["queue_overflows"] * BLOCK
    assert len(set(offsets(blocks))) == 1  # the silence is exactly the dropped audio's length


def test_a_driver_overflow_is_counted_and_its_lost_time_filled():
    pa = FakePortAudio()
    mic = MicSource("USB Ears", block_s=BLOCK_S, backend=pa)
    blocks = []
    for b in mic.blocks():
        blocks.append(b)
        if len(blocks) == 5:
            pa.skip_next_s = 0.25  # the driver lost 250 ms before the next block
        if sum(not x.gap for x in blocks) == 12:
            break
    mic.close()
    check_clock(blocks)
    assert mic.counters()["input_overflows"] == 1
    before, after = offsets(blocks)[0], offsets(blocks)[-1]
    assert abs(after - before) <= 0.02 * RATE  # the gap matched the lost time within 20 ms
    assert 0.2 * RATE <= sum(b.n for b in blocks if b.gap) <= 0.3 * RATE


@pytest.mark.parametrize("mode", ["error", "stall"])
def test_a_lost_device_is_retried_with_backoff_and_the_clock_keeps_room_time(mode):
    """Unplugged for 1.2 s: silence streams on in real time, reopening is tried at growing
    intervals, and once the device is back its audio sits where the room's time says (to
    the wall clock's precision: callbacks run late by thread scheduling, tens of ms on a
    loaded machine)."""
    pa = FakePortAudio()
    pa.lose_mode = mode
    mic = MicSource("USB Ears", block_s=BLOCK_S, stall_s=0.2, backoff_s=(0.1, 0.4), backend=pa)
    blocks, unplugged_at, gap_while_away = [], None, 0
    for b in mic.blocks():
        blocks.append(b)
        now = time.monotonic()
        if unplugged_at is None and len(blocks) == 10:
            pa.plugged, unplugged_at = False, now
        if unplugged_at and pa.plugged is False:
            gap_while_away += b.n if b.gap else 0
            if now - unplugged_at > 1.2:
                pa.plugged = True
        if pa.plugged and unplugged_at and sum(not x.gap for x in blocks) >= 20:
            break
        assert now - (unplugged_at or now) < 5, "the device never came back"
    mic.close()
    check_clock(blocks)
    c = mic.counters()
    assert c["device_lost"] == 1 and c["reconnects"] == 1
    assert gap_while_away >= 0.7 * RATE  # the stream went on during the outage, not after it
    offs = offsets(blocks)
    assert abs(offs[-1] - offs[0]) <= 0.06 * RATE  # after 1.2 s away, the clock is still room time
    retries = np.diff(pa.opens[1:])  # opens[0] is the first open
    assert c["reconnect_attempts"] == len(pa.opens) - 1 >= 3
    np.testing.assert_allclose(retries[:2], [0.2, 0.4], atol=0.08)  # doubling from 0.1 s
    assert np.all(retries[2:] < 0.4 + 0.08)  # capped at 0.4 s


def test_close_from_another_thread_ends_blocks_and_stops_the_stream():
    pa = FakePortAudio()
    mic = MicSource("USB Ears", block_s=BLOCK_S, backend=pa)
    t0 = time.monotonic()
    threading.Timer(0.3, mic.close).start()
    n = sum(1 for _ in mic.blocks())
    assert 0.29 < time.monotonic() - t0 < 0.6 and n >= 5
    time.sleep(0.05)
    assert len(pa.opens) == 1 and mic.counters()["device_lost"] == 0
