"""WavSource and ArraySource: contiguous stream clock, exact samples, real-time pacing without
drift, bounded memory, and one clear error per bad file."""

import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from agent.capture import ArraySource, PcmBlock, Source, WavSource
from agent.core.errors import BinauraError


def noise(seconds, rate, seed=0, channels=2):
    x = np.random.default_rng(seed).uniform(-0.5, 0.5, (int(round(seconds * rate)), channels))
    return x.astype(np.float32)


@pytest.fixture()
def wav44(tmp_path):
    """2.35 s of int16 noise at 44.1 kHz: not a whole number of 0.1 s blocks."""
    path = tmp_path / "noise.wav"
    sf.write(path, noise(2.35, 44_100), 44_100, subtype="PCM_16")
    return path


def assert_contiguous(blocks: list[PcmBlock], rate: int):
    assert blocks and blocks[0].t_s == 0.0
    start = 0
    for a, b in zip(blocks, blocks[1:]):
        assert b.t_s == pytest.approx(a.t_end_s, abs=1e-9)  # block k+1 starts where block k ended
        start += a.n
        assert round(b.t_s * rate) == start  # and on the sample grid: the clock never slips
    assert all(b.rate_hz == rate for b in blocks)


def test_blocks_are_contiguous_and_equal_the_file(wav44):
    src = WavSource(wav44, paced=False)
    assert isinstance(src, Source) and src.rate_hz == 44_100 and not src.live
    blocks = list(src.blocks())
    assert_contiguous(blocks, 44_100)
    assert [b.n for b in blocks[:-1]] == [4410] * (len(blocks) - 1) and blocks[-1].n == 103_635 - 23 * 4410
    want = sf.read(wav44, dtype="float32", always_2d=True)[0].T  # (2, T) as libsndfile decodes it
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks], axis=1), want)
    assert not any(b.gap for b in blocks)
    assert src.counters() == {"samples_out": want.shape[1], "late_blocks": 0}
    assert "44100 Hz" in src.describe() and "2.4 s" in src.describe() and "fast" in src.describe()


def test_float_file_round_trips_exactly_and_channels_keep_their_side(tmp_path):
    x = noise(0.5, 48_000, seed=3)
    x[:, 1] = 0.1 * x[:, 0]  # R 20 dB below L: a swapped channel would show
    sf.write(tmp_path / "f.wav", x, 48_000, subtype="FLOAT")
    out = np.concatenate([b.samples for b in WavSource(tmp_path / "f.wav", paced=False, block_s=0.03).blocks()], 1)
    np.testing.assert_array_equal(out, x.T)
    level_db = 10 * np.log10((out[0] ** 2).mean() / (out[1] ** 2).mean())
    assert level_db == pytest.approx(20.0, abs=0.01)


def test_paced_takes_the_file_duration_and_never_releases_audio_early(tmp_path):
    sf.write(tmp_path / "one.wav", noise(1.0, 16_000), 16_000)
    src = WavSource(tmp_path / "one.wav", paced=True)
    assert src.live
    t0 = time.monotonic()
    released = [(time.monotonic() - t0, b) for b in src.blocks()]
    elapsed = time.monotonic() - t0
    assert 0.99 <= elapsed < 1.4
    # A live source cannot hand out audio before the room has produced it.
    assert all(at >= b.t_end_s - 0.005 for at, b in released)
    t0 = time.monotonic()
    n = sum(b.n for b in WavSource(tmp_path / "one.wav", paced=False).blocks())
    assert n == 16_000 and time.monotonic() - t0 < 0.2  # --fast: no sleeping


def test_a_slow_consumer_does_not_push_the_end_later(tmp_path):
    """Deadlines are absolute (t0 + samples / rate): a consumer that stalls once is caught up
    with, not added to the run time, and the late blocks are counted."""
    sf.write(tmp_path / "one.wav", noise(1.0, 16_000), 16_000)
    src = WavSource(tmp_path / "one.wav", paced=True)
    t0 = time.monotonic()
    for i, _ in enumerate(src.blocks()):
        if i == 1:
            time.sleep(0.45)  # 4 blocks' worth: blocks 2-5 are due by the time it returns
    elapsed = time.monotonic() - t0
    assert 0.99 <= elapsed < 1.4  # summed sleeps would have taken >= 1.45 s
    assert 2 <= src.counters()["late_blocks"] <= 4


def test_close_from_another_thread_stops_a_paced_stream_mid_sleep(tmp_path):
    sf.write(tmp_path / "long.wav", noise(10.0, 16_000), 16_000)
    src = WavSource(tmp_path / "long.wav", paced=True, block_s=2.0)
    threading.Timer(0.2, src.close).start()
    t0 = time.monotonic()
    got = list(src.blocks())
    assert got == [] and time.monotonic() - t0 < 0.5  # the first block (due at 2 s) never came


def test_memory_stays_one_block_however_long_the_file(tmp_path):
    rate = 16_000
    path = tmp_path / "long.wav"
    piece = noise(10.0, rate)
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as f:  # a minute, written in pieces
        for _ in range(6):
            f.write(piece)
    whole_mb = 60 * rate * 2 * 4 / 1e6  # the file as float32: 7.7 MB
    src = WavSource(path, paced=False)
    tracemalloc.start()
    n = 0
    for b in src.blocks():
        n += b.n
    peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    assert n == 60 * rate
    assert peak_mb < 0.5 < whole_mb / 10  # a few blocks of 12.8 kB, never the file


@pytest.mark.parametrize("make,expected", [
    (lambda p: None, "audio file is missing"),
    (lambda p: p.write_text("not audio at all"), "not a readable audio file"),
    (lambda p: sf.write(p, noise(0.1, 48_000, channels=1), 48_000), "expected 2 channels (L, R), got 1"),
    (lambda p: sf.write(p, noise(0.1, 48_000, channels=4), 48_000), "expected 2 channels (L, R), got 4"),
    (lambda p: sf.write(p, noise(0.1, 8_000), 8_000), "sample rate 8000 Hz is below 16000 Hz"),
    (lambda p: sf.write(p, np.zeros((0, 2), np.float32), 48_000), "holds no samples"),
], ids=["missing", "not-audio", "mono", "four-channels", "8khz", "empty"])
def test_bad_files_are_one_clear_error_naming_the_file(tmp_path, make, expected):
    path = tmp_path / "in.wav"
    make(path)
    with pytest.raises(BinauraError) as e:
        WavSource(path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_block_length_is_checked(wav44):
    for bad in (0, -0.1, 60.0, "0.1", True):
        with pytest.raises(BinauraError, match=r"block_s must be a number of seconds in \[0.001, 10\]"):
            WavSource(wav44, block_s=bad)


def test_array_source_streams_the_array_on_the_same_clock():
    x = noise(1.234, 48_000, seed=5).T.copy()
    src = ArraySource(x, 48_000, name="scene:demo", paced=False, block_s=0.25)
    assert isinstance(src, Source) and src.name == "scene:demo" and "scene:demo" in src.describe()
    blocks = list(src.blocks())
    assert_contiguous(blocks, 48_000)
    assert [b.n for b in blocks] == [12_000] * 4 + [11_232]
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks], 1), x)
    with pytest.raises(BinauraError, match="already called"):
        next(src.blocks())


def test_array_source_refuses_what_is_not_binaural():
    with pytest.raises(BinauraError, match=r"scene:x: expected binaural audio of shape \(2, T\).*got shape \(48000,\)"):
        ArraySource(np.zeros(48_000, np.float32), 48_000, name="scene:x")
    with pytest.raises(BinauraError, match="12000 Hz is below the minimum 16000 Hz"):
        ArraySource(np.zeros((2, 100), np.float32), 12_000)
