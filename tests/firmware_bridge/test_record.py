"""`binaura bridge record`: blocks stream to disk as they arrive; the take is exact and never half-written."""

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

import export.bridge_cli as bridge_cli
from export.cli import main
from firmware_bridge import protocol as P
from firmware_bridge.emulator import DeviceEmulator, FaultConfig, PtyLink
from firmware_bridge.reassembly import AudioBlock

RATE = 48_000
BLOCK = 480  # 10 ms


def block(i: int, rate: int = RATE) -> AudioBlock:
    x = np.random.default_rng(i).uniform(-0.5, 0.5, (BLOCK, 2)).astype(np.float32)
    return AudioBlock(i * BLOCK / rate, rate, x)


class FakeSource:
    """Stands in for BridgeSource: `n` blocks made on the fly, then optionally a fault."""

    def __init__(self, n: int, fault: BaseException | None = None, rates: dict | None = None):
        self.n, self.fault, self.rates = n, fault, rates or {}
        self.closed = False

    def blocks(self, until_s=None):
        for i in range(self.n):
            yield block(i, self.rates.get(i, RATE))
        if self.fault is not None:
            raise self.fault

    def health(self):
        return {"reassembly": {"gaps": 0}, "decoder": {"crc_errors": 0, "invalid_frames": 0, "nonfinite_frames": 0},
                "drift_ppm": None}

    def close(self):
        self.closed = True


def sent(n: int) -> np.ndarray:
    return np.concatenate([block(i).samples for i in range(n)])


def record(monkeypatch, tmp_path, src: FakeSource, fmt: str = "float32") -> int:
    monkeypatch.setattr(bridge_cli, "_source", lambda uri, correct_drift=True: src)
    return main(["bridge", "record", "bridge:udp://:5005", "--seconds", "1", "--format", fmt,
                 "--out", str(tmp_path / "take.wav")])


def leftovers(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "take.wav")


def test_memory_stays_flat_however_long_the_take(monkeypatch, tmp_path):
    """The old recorder kept every block, then a concatenated copy: 2 x 7.7 MB for 20 s of float32 stereo."""
    record(monkeypatch, tmp_path, FakeSource(2))  # imports and parser built before measuring
    peaks = {}
    for seconds in (2, 20):
        n = seconds * RATE // BLOCK
        tracemalloc.start()
        try:
            assert record(monkeypatch, tmp_path, FakeSource(n)) == 0
            peaks[seconds] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        data, rate = sf.read(tmp_path / "take.wav", dtype="float32")
        assert rate == RATE and data.shape == (n * BLOCK, 2)
        np.testing.assert_array_equal(data, sent(n))  # float32 wav: exactly the samples received
    one_second_bytes = RATE * 2 * 4
    assert peaks[20] < one_second_bytes  # a bounded number of blocks in memory, not the take
    assert peaks[20] - peaks[2] < 64 * 1024  # ten times the length, the same peak


def test_ctrl_c_keeps_the_take_so_far_as_a_valid_wav(monkeypatch, tmp_path, capsys):
    assert record(monkeypatch, tmp_path, FakeSource(25, KeyboardInterrupt()), fmt="int16") == 0
    data, rate = sf.read(tmp_path / "take.wav", dtype="float32")
    assert rate == RATE and len(data) == 25 * BLOCK  # 0.25 s: every block before the interrupt
    np.testing.assert_allclose(data, sent(25), rtol=0, atol=1 / 32768)  # int16: within one step
    assert leftovers(tmp_path) == [] and "interrupted: kept 0.25 s" in capsys.readouterr().out


def test_an_error_leaves_nothing_half_written(monkeypatch, tmp_path):
    (tmp_path / "take.wav").write_bytes(b"an earlier take")
    src = FakeSource(40, OSError("device unplugged"))
    with pytest.raises(OSError, match="unplugged"):
        record(monkeypatch, tmp_path, src)
    assert (tmp_path / "take.wav").read_bytes() == b"an earlier take" and leftovers(tmp_path) == []
    assert src.closed


def test_a_sample_rate_change_mid_take_is_refused(monkeypatch, tmp_path, capsys):
    """The old recorder concatenated 48 kHz and 16 kHz audio into one file labelled 48 kHz."""
    assert record(monkeypatch, tmp_path, FakeSource(30, rates={i: 16_000 for i in range(20, 30)})) == 2
    err = capsys.readouterr().err
    assert "from 48000 to 16000 Hz after 0.20 s" in err
    assert not (tmp_path / "take.wav").exists() and leftovers(tmp_path) == []


@pytest.mark.integration
def test_record_from_the_emulator_is_what_the_board_sent(tmp_path):
    x = np.random.default_rng(0).uniform(-0.3, 0.3, (RATE, 2)).astype(np.float32)
    link = PtyLink(DeviceEmulator(x, RATE, BLOCK, hello_s=0.1), FaultConfig(), speed=2.0).start()
    out = tmp_path / "take.wav"
    try:
        assert main(["bridge", "record", f"bridge:serial://{link.port}", "--seconds", "0.8", "--out", str(out),
                     "--no-drift-correction"]) == 0
    finally:
        link.stop()
    data, rate = sf.read(out, dtype="float32")
    board = P.pcm_to_float(P.float_to_pcm(x, P.S16), P.S16, 2)  # the s16 samples the emulator framed
    # The port opens after the board has started (pyserial flushes what came before): find where
    # the take begins. Frames start on multiples of BLOCK; the signal is noise, so one offset fits.
    starts = [k for k in range(0, len(board) - BLOCK + 1, BLOCK) if np.array_equal(board[k:k + BLOCK], data[:BLOCK])]
    assert rate == RATE and len(starts) == 1
    k = starts[0]
    assert k + len(data) == len(board) and len(data) >= len(board) // 2  # through the board's last frame
    np.testing.assert_array_equal(data, board[k:])  # sample for sample, both ears, no gap
    assert leftovers(tmp_path) == []
