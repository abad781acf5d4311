"""Long recordings are heard block by block: the same sources as one pass, in bounded memory."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from agent.core.audio import StreamResampler, resample_to
from agent.core.predictor import Clip
from agent.localize.encoder import EncoderLocalizer
from agent.localize.long_clip import array_blocks, encode_blocks, encode_file


@pytest.mark.parametrize("rates", [(44_100, 48_000), (16_000, 48_000), (48_000, 16_000), (48_000, 48_000)])
@pytest.mark.parametrize("chunk", [1, 441, 48_000, 10**7])
def test_stream_resampler_equals_one_pass(rates, chunk):
    """Chunk size does not change the output: the stream gives resample_to's samples."""
    a, b = rates
    x = np.random.default_rng(0).standard_normal((2, a + 777)).astype(np.float32)
    r = StreamResampler(a, b)
    got = np.concatenate([r.push(x[:, i:i + chunk]) for i in range(0, x.shape[1], chunk)] + [r.flush()], axis=-1)
    want = resample_to(x, a, b)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-6


def _scene_audio(seconds_each=4.0, seed=3):
    from training.synth.config import SynthConfig
    from training.synth.scenes import render_scene, sample_spec

    cfg = SynthConfig(split="bench", heads=("kemar-mit",), min_sources=1, max_sources=1, p_reverberant=0.0,
                      duration_s=seconds_each, event_duration_s=(seconds_each, seconds_each),
                      snr_db=(30.0, 30.0), classes=("clapping",)).validate()
    return render_scene(sample_spec(cfg, seed, 0), cfg)


def test_blocks_and_files_give_the_one_pass_frames(tmp_path):
    """Through the stream, from an array or a 44.1 kHz wav, the encoder's frames are the
    one-pass frames (to 1e-4) and the decoded sources the same."""
    loc = EncoderLocalizer()
    audio, _ = _scene_audio(seconds_each=12.0)
    one = loc.runtime.run_audio(audio, 48_000)
    acc, dist = encode_blocks(loc.runtime, array_blocks(audio, 48_000, block_s=2.5), 48_000)
    assert acc.shape == one.accdoa.shape and np.abs(acc - one.accdoa).max() < 1e-4
    assert np.abs(dist - one.log_distance).max() < 1e-4
    a44 = resample_to(audio, 48_000, 44_100)
    sf.write(tmp_path / "a44.wav", a44.T, 44_100, subtype="FLOAT")
    ref = loc.runtime.run_audio(a44, 44_100)
    acc, _ = encode_file(loc.runtime, tmp_path / "a44.wav", block_s=3.3)
    assert acc.shape == ref.accdoa.shape and np.abs(acc - ref.accdoa).max() < 1e-4
    by_path = loc.localize(Clip("a44", None, 44_100, path=tmp_path / "a44.wav"))
    in_memory = loc.localize(Clip("a44", a44, 44_100))
    assert [p.label for p in by_path] == [p.label for p in in_memory] == ["clapping"]
    assert abs(by_path[0].azimuth_deg - in_memory[0].azimuth_deg) < 0.01


# The peak is read from VmHWM, this process image's own high-water mark: ru_maxrss would carry
# the forking parent's (pytest's) peak across exec.
_CHILD = """
import json, re, sys
from agent.core.predictor import Clip
from agent.localize.encoder import EncoderLocalizer
found = EncoderLocalizer().localize(Clip("long", None, 48000, path=sys.argv[1]))
hwm_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"peak_rss_mb": hwm_kb / 1024, "found": [[p.label, p.azimuth_deg, p.elevation_deg] for p in found]}))
"""


def test_a_twenty_minute_file_is_localized_in_bounded_memory(tmp_path):
    """20 minutes of 48 kHz stereo (230 MB as int16, 460 MB as float32, ~2.9 GB through the
    one-pass path) is localized by a process whose peak RSS
    stays under 300 MB (measured 212 MB), the interpreter,
    ONNX Runtime and the encoder included, and the source is where it was rendered."""
    from agent.core.geometry import great_circle_deg

    audio, scene = _scene_audio()
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", 48_000, 2, subtype="PCM_16") as f:
        for _ in range(int(20 * 60 / scene.duration_s)):
            f.write(audio.T)
    assert sf.info(path).duration == pytest.approx(1200.0)
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["peak_rss_mb"] < 300
    (label, az, el), = out["found"]
    true = scene.sources[0]
    assert label == "clapping" and great_circle_deg(az, el, true.azimuth_deg, true.elevation_deg) < 30
