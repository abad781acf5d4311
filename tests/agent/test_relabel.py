"""YAMNet names the encoder's sources (agent.localize.relabel): a source whose own stretch of the
clip holds another sound is renamed when YAMNet is sure of it and the encoder is not;
directions, distances and
confidences never move; labels YAMNet cannot score are neither taken nor replaced; with the
rule off the output is the plain encoder's. A stand-in encoder (its ACCDOA frames written by
hand) and a stand-in YAMNet that hears a 1 kHz tone as an alarm keep these fast and exact;
the real YAMNet is used only where it is set up, as in test_yamnet_runtime."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from agent.core.audioset import AUDIOSET_TO_LABEL
from agent.core.errors import BinauraError
from agent.core.geometry import sph_to_cart
from agent.core.labels import LABELS
from agent.core.predictor import Clip
from agent.core.seld import DecodeConfig, decode_clip
from agent.core.yamnet_features import PATCH_HOP_FRAMES, default_yamnet_dir
from agent.localize.relabel import (
    MAX_WINDOW_S,
    PATCH_S,
    YamnetRelabelLocalizer,
    analysis_window,
    expressible_labels,
    patch_weights,
    relabel,
)

RATE_HZ = 48_000
FRAME_HZ = 10.0  # the encoder's output frames per second
FETCHED = (default_yamnet_dir() / "yamnet.json").is_file()


class ToneYamnet:
    """A stand-in YAMNet: per 0.96 s patch every 0.48 s of 16 kHz mono, "alarm" scores 0.95 when
    most of the patch's power lies within 50 Hz of 1 kHz, 0.01 otherwise; "engine" scores 0.3
    on every patch that has any sound (a noise floor); everything else 0.01."""

    def __init__(self):
        self.calls = 0

    def __call__(self, mono: np.ndarray, rate_hz: int):
        assert rate_hz == 16_000 and mono.ndim == 1
        self.calls += 1
        n, hop = 15_360, PATCH_HOP_FRAMES * 160
        mono = np.pad(mono, (0, max(0, n - len(mono))))
        starts = np.arange(0, len(mono) - n + 1, hop)
        scores = np.full((len(starts), len(LABELS)), 0.01)
        for i, a in enumerate(starts):
            spec = np.abs(np.fft.rfft(mono[a:a + n])) ** 2
            f = np.fft.rfftfreq(n, 1 / rate_hz)
            if spec.sum() > 1e-9:
                scores[i, LABELS.index("engine")] = 0.3
                if spec[np.abs(f - 1000) < 50].sum() > 0.5 * spec.sum():
                    scores[i, LABELS.index("alarm")] = 0.95
        return SimpleNamespace(start_s=starts / rate_hz, label_scores=scores)


@dataclasses.dataclass
class Track:
    label: str
    azimuth_deg: float
    start_s: float
    end_s: float
    elevation_deg: float = 0.0
    activity: float = 0.9
    distance_m: float = 2.0


class HandEncoder:
    """A stand-in EncoderLocalizer: its ACCDOA frames are the tracks given, whatever the audio."""

    name = "hand"

    def __init__(self, tracks: list[Track], duration_s: float):
        self.runtime = SimpleNamespace(labels=LABELS, slot_labels=LABELS, output_rate_hz=FRAME_HZ)
        self.decode = DecodeConfig()
        t = int(round(duration_s * FRAME_HZ))
        self.accdoa = np.zeros((t, len(LABELS), 3), np.float32)
        self.log_distance = np.zeros((t, len(LABELS)), np.float32)
        for tr in tracks:
            c = LABELS.index(tr.label)
            a, b = int(round(tr.start_s * FRAME_HZ)), int(round(tr.end_s * FRAME_HZ))
            self.accdoa[a:b, c] = tr.activity * sph_to_cart(tr.azimuth_deg, tr.elevation_deg)
            self.log_distance[a:b, c] = np.log(tr.distance_m)

    def frames(self, clip: Clip):
        return self.accdoa, self.log_distance

    def localize(self, clip: Clip):
        return decode_clip(self.accdoa, self.log_distance, LABELS, FRAME_HZ, self.decode)


def _clip(duration_s: float, tone: tuple[float, float] | None, seed: int = 0) -> Clip:
    """Quiet noise in both ears, with a 1 kHz tone from start to end (s) when given."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE_HZ)
    audio = 0.003 * rng.standard_normal((2, n))
    if tone is not None:
        a, b = (int(x * RATE_HZ) for x in tone)
        audio[:, a:b] += 0.3 * np.sin(2 * np.pi * 1000 * np.arange(b - a) / RATE_HZ)
    return Clip("c", audio.astype(np.float32), RATE_HZ)


def _same_but_label(a, b):
    assert [dataclasses.replace(s, label=None) for s in a] == [dataclasses.replace(s, label=None) for s in b]


def test_the_source_whose_stretch_holds_the_alarm_is_renamed_and_nothing_moves():
    tracks = [Track("speech", 60.0, 0.2, 2.0, distance_m=1.5), Track("dog", -70.0, 2.6, 4.6, elevation_deg=20.0)]
    enc = HandEncoder(tracks, 5.0)
    clip = _clip(5.0, tone=(2.6, 4.6))  # the tone sounds while the "dog" is active, not the "speech"
    plain = enc.localize(clip)
    got = YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.8, max_confidence=0.95).localize(clip)
    assert {s.label for s in plain} == {"speech", "dog"}
    assert {s.label: g.label for s, g in zip(plain, got, strict=True)} == {"speech": "speech", "dog": "alarm"}
    _same_but_label(plain, got)  # direction, distance, confidence and order are the encoder's


def test_an_unsure_yamnet_or_a_sure_encoder_changes_nothing():
    clip = _clip(5.0, tone=(2.6, 4.6))
    enc = HandEncoder([Track("dog", -70.0, 2.6, 4.6, activity=0.9)], 5.0)
    assert YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.96).localize(clip)[0].label == "dog"
    # the encoder is surer of its dog (activity 0.99) than max_confidence: kept, YAMNet not run
    fake = ToneYamnet()
    sure = HandEncoder([Track("dog", -70.0, 2.6, 4.6, activity=0.99)], 5.0)
    assert YamnetRelabelLocalizer(sure, fake, min_score=0.5, max_confidence=0.95).localize(clip)[0].label == "dog"
    assert fake.calls == 0
    # an alarm track on the tone: YAMNet's top label is the encoder's own, kept
    enc = HandEncoder([Track("alarm", -70.0, 2.6, 4.6)], 5.0)
    assert YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.5).localize(clip)[0].label == "alarm"
    # the "engine" floor (0.3) is YAMNet's top label off the tone, but under min_score
    enc = HandEncoder([Track("dog", 60.0, 0.2, 2.0)], 5.0)
    assert YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.5).localize(clip)[0].label == "dog"
    # ... and over it (a lax rule) it renames the source
    assert YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.2).localize(clip)[0].label == "engine"


def test_with_the_rule_off_the_output_is_the_plain_encoders_and_yamnet_is_not_run():
    from agent.localize.encoder import EncoderLocalizer

    audio = (np.random.default_rng(0).standard_normal((2, 2 * RATE_HZ)) * 0.05).astype(np.float32)
    audio[:, RATE_HZ // 2:] += 0.3 * np.sin(2 * np.pi * 1000 * np.arange(audio.shape[1] - RATE_HZ // 2) / RATE_HZ)
    clip = Clip("x", audio, RATE_HZ)
    for enc in (EncoderLocalizer(), HandEncoder([Track("dog", 30.0, 0.5, 2.0)], 2.0)):
        fake = ToneYamnet()
        assert YamnetRelabelLocalizer(enc, fake, min_score=1.01).localize(clip) == enc.localize(clip)
        assert fake.calls == 0


def test_a_label_yamnet_cannot_score_is_never_taken_nor_replaced():
    table = {**AUDIOSET_TO_LABEL, "alarm": (), "knocking": ()}  # as if AudioSet had no class for them
    assert not expressible_labels(LABELS, table)[LABELS.index("alarm")]
    # "knocking" has no AudioSet class: the source keeps it even though YAMNet is sure of an alarm
    enc = HandEncoder([Track("knocking", -70.0, 2.6, 4.6)], 5.0)
    clip = _clip(5.0, tone=(2.6, 4.6))
    fake = ToneYamnet()
    assert YamnetRelabelLocalizer(enc, fake, min_score=0.5, table=table).localize(clip)[0].label == "knocking"
    assert fake.calls == 0  # nothing YAMNet says could change it
    # YAMNet's sure "alarm" cannot be expressed either: the dog is not renamed into it, and
    # YAMNet's top expressible label (the 0.3 engine floor) is under min_score
    enc = HandEncoder([Track("dog", -70.0, 2.6, 4.6)], 5.0)
    assert YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.5, table=table).localize(clip)[0].label == "dog"
    # the rule alone, over every label: a source carrying an inexpressible label never changes
    # and no source is ever given one
    rng = np.random.default_rng(1)
    for _ in range(200):
        labels = list(rng.choice(LABELS, size=3, replace=False))
        got = relabel(labels, np.full(3, 0.6), rng.uniform(0, 1, (3, len(LABELS))), min_score=0.3,
                      max_confidence=0.9, table=table)
        for own, new in zip(labels, got, strict=True):
            assert new == own or (new not in ("alarm", "knocking") and own not in ("alarm", "knocking"))
    # a label outside binaura's LABELS (an export of another vocabulary) is kept as it is
    assert relabel(["whistle"], [0.6], np.full((1, len(LABELS)), 0.99), min_score=0.5) == ["whistle"]


def test_two_sources_renamed_alike_are_both_kept_where_they_are():
    music = np.full((2, len(LABELS)), 0.01)
    music[:, LABELS.index("music")] = 0.9  # YAMNet hears music on both sources' stretches
    assert relabel(["speech", "dog"], [0.7, 0.7], music, min_score=0.8, max_confidence=0.9) == ["music", "music"]
    assert relabel(["speech", "music"], [0.7, 0.7], music, min_score=0.8, max_confidence=0.9) == ["music", "music"]
    # through the localizer: the tone sounds over both tracks, both become alarms at their own places
    enc = HandEncoder([Track("speech", 60.0, 0.2, 2.4, distance_m=1.5), Track("dog", -70.0, 2.6, 4.6)], 5.0)
    clip = _clip(5.0, tone=(0.0, 5.0))
    plain = enc.localize(clip)
    got = YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.8, max_confidence=0.95).localize(clip)
    assert [s.label for s in got] == ["alarm", "alarm"]
    _same_but_label(plain, got)


def test_short_and_long_spans_get_a_window_of_sense():
    active = np.zeros(50, bool)
    active[20:23] = True  # 0.3 s in a 5 s clip: one 0.96 s patch centred on it
    a, b = analysis_window(active, FRAME_HZ, 5.0)
    assert b - a == pytest.approx(PATCH_S) and (a + b) / 2 == pytest.approx(2.15)
    active[:] = False
    active[:2] = True  # at the very start: the patch is shifted into the clip
    assert analysis_window(active, FRAME_HZ, 5.0) == pytest.approx((0.0, PATCH_S))
    active[:] = False
    active[48:] = True  # at the very end
    assert analysis_window(active, FRAME_HZ, 5.0) == pytest.approx((5.0 - PATCH_S, 5.0))
    assert analysis_window(np.ones(5, bool), FRAME_HZ, 0.5) == pytest.approx((0.0, 0.5))  # a clip under a patch
    active[:] = False
    active[5:31] = True  # a long span is heard whole
    assert analysis_window(active, FRAME_HZ, 5.0) == pytest.approx((0.5, 3.1))
    # a span longer than MAX_WINDOW_S: the stretch where the source is most active
    long = np.zeros(int(120 * FRAME_HZ), bool)
    long[::50] = True
    long[600:900] = True  # busy from 60 s to 90 s
    a, b = analysis_window(long, FRAME_HZ, 120.0)
    assert (a, b) == pytest.approx((60.0, 60.0 + MAX_WINDOW_S))
    with pytest.raises(BinauraError, match="no active"):
        analysis_window(np.zeros(10, bool), FRAME_HZ, 1.0)
    # patches count as much as the source is active in them
    active = np.zeros(50, bool)
    active[10:20] = True
    w = patch_weights(np.array([0.0, 1.0, 3.0]), active, FRAME_HZ)
    assert w[0] == pytest.approx(0.0, abs=0.11) and w[1] == pytest.approx(1.0) and w[2] == 0.0


def test_a_long_clip_given_by_path_is_heard_as_the_array(tmp_path):
    enc = HandEncoder([Track("speech", 60.0, 0.2, 2.0), Track("dog", -70.0, 2.6, 4.6)], 5.0)
    clip = _clip(5.0, tone=(2.6, 4.6))
    sf.write(tmp_path / "c.wav", clip.audio.T, RATE_HZ, subtype="FLOAT")
    loc = YamnetRelabelLocalizer(enc, ToneYamnet(), min_score=0.8)
    assert loc.localize(Clip("c", None, RATE_HZ, path=tmp_path / "c.wav")) == loc.localize(clip)


def test_encoder_yamnet_before_set_up_says_how(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from export.registry import make_localizer

    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path))
    with pytest.raises(BinauraError, match="yamnet_setup --ensure"):
        make_localizer("encoder:yamnet")


@pytest.mark.skipif(not FETCHED, reason="YAMNet not fetched; run `python -m training.models.yamnet_setup --ensure`")
def test_the_model_option_combines_and_keeps_the_encoders_directions():
    from export.registry import make_localizer

    loc = make_localizer("encoder:single:yamnet")
    assert loc.name == "encoder:single:yamnet" and loc.runtime.mirror_tta is False
    assert make_localizer("encoder:yamnet").name == "encoder:yamnet"
    assert make_localizer("encoder:mirror:yamnet").name == "encoder:mirror:yamnet"
    scaled = make_localizer("encoder:scale=1.1:yamnet")
    assert scaled.runtime.head_scale == 1.1 and scaled.name == "encoder:scale=1.1:yamnet"
    plain = make_localizer("encoder:single")
    clip = _clip(3.0, tone=(0.5, 2.5))
    _same_but_label(plain.localize(clip), loc.localize(clip))
