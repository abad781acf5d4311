"""YAMNet names the encoder's sources (the model option `encoder:yamnet`).

The encoder localizes well but names real recordings poorly; YAMNet (AudioSet, run by
agent.localize.yamnet) was trained on real recordings and knows nothing of direction. Here
every source the encoder decodes keeps its direction, distance and confidence (the very
SourceEstimate the plain encoder returns) and only its label may change:
- YAMNet hears each source on its own stretch of the clip (`analysis_window`: from its first
  to its last active encoder frame, widened about its centre to one 0.96 s patch when
  shorter), steered toward it (agent.voice.steer; STEER_METHOD, the ear on its side), its
  patch scores averaged with weights for how much of each patch the source is active in
  (`patch_weights`), then folded into binaura's labels by agent.core.audioset's table (a
  label's score: the largest among its AudioSet classes, in [0, 1]).
- `relabel` (the rule): YAMNet's top label t replaces the encoder's label when YAMNet gives
  t at least MIN_SCORE and the encoder is less sure of its own label than MAX_CONFIDENCE
  (the source's confidence: its mean ACCDOA activity over its active frames, the encoder's
  own class evidence). Each source is decided alone: two sources may end up with one label,
  and both are kept, each at its own direction (two talkers are two sources; merging would
  throw a direction away). Forbidding it (a source keeps its label when another source of
  the clip holds YAMNet's) was measured worse on select_real (below): the label it defers to
  is the encoder's, which is usually the wrong one on real recordings.
- A label the table gives no AudioSet class (or that is not one of binaura's LABELS) is
  never relabelled into, and a source that carries one is never relabelled.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.core.audioset import AUDIOSET_TO_LABEL
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.predictor import Clip
from agent.core.scene import SourceEstimate
from agent.core.seld import decode_active
from agent.core.yamnet_features import FRAME_RATE_HZ, PATCH_FRAMES
from agent.voice.steer import STEER_METHODS, STEER_RATE_HZ, steer

#: One YAMNet patch (s): a source active for less is heard on a patch centred on its span.
PATCH_S = PATCH_FRAMES / FRAME_RATE_HZ
#: The longest stretch (s) YAMNet hears per source: a source active over a longer span (a long
#: recording) is heard on the stretch of this length where it is active on the most frames.
MAX_WINDOW_S = 30.0

# The defaults, chosen by export/relabel_sweep.py on the selection sets only (never on
# data/bench or data/bench-real): data/select_real (400 scenes of real recordings, train side
# of the kit; 479 matched sources) and the first 300 scenes of data/select11 (synthetic,
# benchmark-like; 549 matched sources); the rule: the highest class accuracy on select_real
# whose select11 class accuracy is at most 1 point under the plain encoder's, over MIN_SCORE
# 0.05-1.0 x MAX_CONFIDENCE 0.80-0.99. Plain encoder: select_real 25.47%, select11 89.80%.
# Chosen (better_ear, 0.60, 0.90): 28.18% and 89.07%. First chosen on select11's first 100
# scenes only (0.60, 0.95), which on 300 scenes costs 2.9 points, and cost the benchmark 3.8:
# docs/encoder.md, "YAMNet names the sources".
#: YAMNet's score for its top label (in [0, 1]) at or above which it may replace the encoder's.
MIN_SCORE = 0.6
#: ... when the encoder's confidence in its own label (mean ACCDOA activity, 0.5-1) is under this.
MAX_CONFIDENCE = 0.90
#: How the source's stretch is made mono for YAMNet (agent.voice.steer.STEER_METHODS).
STEER_METHOD = "better_ear"


def expressible_labels(labels: tuple[str, ...] = LABELS,
                       table: dict[str, tuple[str, ...]] | None = None) -> np.ndarray:
    """(len(labels),) bool: the labels YAMNet can score: binaura LABELS (the columns of
    YamnetOutput.label_scores) to which the AudioSet table maps at least one class."""
    table = AUDIOSET_TO_LABEL if table is None else table
    return np.array([lab in LABELS and bool(table.get(lab)) for lab in labels], bool)


def analysis_window(active: np.ndarray, frame_rate_hz: float, duration_s: float) -> tuple[float, float]:
    """A source's active encoder frames (T,) bool at frame_rate_hz -> (start_s, end_s), the stretch
    of the clip YAMNet hears for it: from its first to its last active frame, widened about its
    centre to PATCH_S when shorter (shifted to stay inside [0, duration_s]; the whole clip when
    that is shorter still); when longer than MAX_WINDOW_S, the MAX_WINDOW_S stretch holding the
    most active frames (the earliest such)."""
    on = np.flatnonzero(active)
    if on.size == 0:
        raise BinauraError("YAMNet relabelling: a source with no active encoder frame has no stretch to hear")
    start, end = on[0] / frame_rate_hz, (on[-1] + 1) / frame_rate_hz
    if end - start > MAX_WINDOW_S:
        n = int(round(MAX_WINDOW_S * frame_rate_hz))
        first = int(np.argmax(np.convolve(np.asarray(active, float), np.ones(n), mode="valid")))
        start, end = first / frame_rate_hz, (first + n) / frame_rate_hz
    if end - start < PATCH_S:
        centre = 0.5 * (start + end)
        start, end = centre - PATCH_S / 2, centre + PATCH_S / 2
        shift = max(0.0, -start) - max(0.0, end - duration_s)
        start, end = start + shift, end + shift
    return max(0.0, start), min(duration_s, end)


def patch_weights(patch_start_s: np.ndarray, active: np.ndarray, frame_rate_hz: float) -> np.ndarray:
    """Patch starts (N,) in clip seconds -> (N,) the fraction of each 0.96 s patch's encoder
    frames (active: (T,) bool at frame_rate_hz) in which the source is active; uniform weights
    when no patch holds an active frame."""
    t = (np.arange(len(active)) + 0.5) / frame_rate_hz  # frame centres (s)
    starts = np.asarray(patch_start_s, float)[:, None]
    inside = (t[None, :] >= starts) & (t[None, :] < starts + PATCH_S)
    w = (inside & np.asarray(active, bool)[None, :]).sum(1) / np.maximum(1, inside.sum(1))
    return w if w.sum() > 0 else np.ones(len(w))


def check_steer_method(method: str) -> str:
    """The steering method, or a BinauraError naming the allowed ones (agent.voice.steer)."""
    if method not in STEER_METHODS:
        raise BinauraError(f"YAMNet relabelling: unknown steering method {method!r}; "
                           f"expected one of {', '.join(STEER_METHODS)}")
    return method


def yamnet_source_hearing(yamnet, window: np.ndarray, sample_rate_hz: int, window_start_s: float,
                          azimuth_deg: float, elevation_deg: float, active: np.ndarray, frame_rate_hz: float,
                          steer_method: str = STEER_METHOD, fields: tuple[str, ...] = ("label_scores",)
                          ) -> dict[str, np.ndarray]:
    """What YAMNet hears of one source: its stretch of the clip, window (2, n) binaural at
    sample_rate_hz starting at window_start_s in the clip (`analysis_window`), its direction (deg)
    and its active encoder frames (T,) bool at frame_rate_hz -> {field: the patch rows of that
    YamnetOutput field averaged with `patch_weights`}: the window steered toward the source.
    fields: of YamnetOutput, "label_scores" ((len(LABELS),) in LABELS order, in [0, 1]),
    "scores" (521 AudioSet scores) or "embeddings" (1024). yamnet: a YamnetRuntime, or anything
    called alike ((n,) mono, rate) -> an object with start_s (N,) and those fields (N, ...)."""
    out = yamnet(steer(window, sample_rate_hz, azimuth_deg, check_steer_method(steer_method), elevation_deg),
                 STEER_RATE_HZ)
    w = patch_weights(window_start_s + np.asarray(out.start_s, float), active, frame_rate_hz)
    heard = {}
    for field in fields:
        rows = np.asarray(getattr(out, field), float)
        width = len(LABELS) if field == "label_scores" else None
        if rows.ndim != 2 or rows.shape[0] != len(w) or (width is not None and rows.shape[1] != width):
            raise BinauraError(f"YAMNet relabelling: expected {field} ({len(w)}, {width or 'F'}), got {rows.shape}")
        heard[field] = (w[:, None] * rows).sum(0) / w.sum()
    return heard


def yamnet_source_scores(yamnet, window: np.ndarray, sample_rate_hz: int, window_start_s: float,
                         azimuth_deg: float, elevation_deg: float, active: np.ndarray, frame_rate_hz: float,
                         steer_method: str = STEER_METHOD) -> np.ndarray:
    """YAMNet's label scores for one source (`yamnet_source_hearing`'s "label_scores"):
    (len(LABELS),) in [0, 1] in LABELS order."""
    return yamnet_source_hearing(yamnet, window, sample_rate_hz, window_start_s, azimuth_deg, elevation_deg,
                                 active, frame_rate_hz, steer_method)["label_scores"]


def relabel(labels: list[str | None], confidences, scores: np.ndarray, min_score: float = MIN_SCORE,
            max_confidence: float = MAX_CONFIDENCE, vocabulary: tuple[str, ...] = LABELS,
            table: dict[str, tuple[str, ...]] | None = None) -> list[str | None]:
    """The rule (module docstring): the encoder's labels and confidences of sources (S,) and
    YAMNet's scores for them (S, len(LABELS)) in LABELS order -> the final labels. A source is
    relabelled to YAMNet's top label t (among the labels in `vocabulary`, the encoder's, that
    the table can express) when scores[t] >= min_score and its confidence < max_confidence;
    each source alone (two may end with one label). min_score above 1 relabels nothing."""
    scores = np.asarray(scores, float).reshape(len(labels), len(LABELS))
    confidences = np.asarray(confidences, float).reshape(len(labels))
    can = expressible_labels(LABELS, table) & np.isin(np.asarray(LABELS), list(vocabulary))
    masked = np.where(can[None, :], scores, -np.inf)
    top = np.argmax(masked, axis=1) if len(labels) else np.zeros(0, int)
    out = list(labels)
    for i, own in enumerate(labels):
        if own not in LABELS or not can[LABELS.index(own)]:
            continue  # a label YAMNet cannot score is never replaced
        if masked[i, top[i]] >= min_score and confidences[i] < max_confidence:
            out[i] = LABELS[top[i]]
    return out


def window_samples(sample_rate_hz: int, start_s: float, end_s: float) -> tuple[int, int]:
    """The sample range [a, b) of the stretch start_s..end_s (at least one sample)."""
    a = int(round(start_s * sample_rate_hz))
    return a, max(int(round(end_s * sample_rate_hz)), a + 1)


def source_hearing(yamnet, audio: np.ndarray, sample_rate_hz: int, source: SourceEstimate, active: np.ndarray,
                   frame_rate_hz: float, steer_method: str = STEER_METHOD,
                   fields: tuple[str, ...] = ("label_scores",)) -> dict[str, np.ndarray]:
    """What YAMNet hears of one decoded source of a clip held in memory: audio (2, T) at
    sample_rate_hz, the source's active encoder frames (T',) bool at frame_rate_hz; its stretch
    by `analysis_window`, heard by `yamnet_source_hearing`."""
    start_s, end_s = analysis_window(active, frame_rate_hz, audio.shape[-1] / sample_rate_hz)
    a, b = window_samples(sample_rate_hz, start_s, end_s)
    return yamnet_source_hearing(yamnet, audio[:, a:b], sample_rate_hz, start_s, source.azimuth_deg,
                                 source.elevation_deg, active, frame_rate_hz, steer_method, fields)


def source_scores(yamnet, audio: np.ndarray, sample_rate_hz: int, source: SourceEstimate, active: np.ndarray,
                  frame_rate_hz: float, steer_method: str = STEER_METHOD) -> np.ndarray:
    """YAMNet's (len(LABELS),) label scores for one decoded source (`source_hearing`)."""
    return source_hearing(yamnet, audio, sample_rate_hz, source, active, frame_rate_hz,
                          steer_method)["label_scores"]


class YamnetRelabelLocalizer:
    """An EncoderLocalizer whose sources YAMNet may rename (module docstring): the encoder's
    directions, distances and confidences, and labels by `relabel`."""

    needs_audio = True
    #: long clips may come as a path: the encoder streams it, YAMNet reads each source's window
    reads_files = True

    def __init__(self, encoder, yamnet=None, min_score: float = MIN_SCORE, max_confidence: float = MAX_CONFIDENCE,
                 steer_method: str = STEER_METHOD, table: dict[str, tuple[str, ...]] | None = None,
                 name: str | None = None, threads: int = 1):
        """encoder: an EncoderLocalizer (anything with `runtime`, `decode` and `frames(clip)`).
        yamnet: a YamnetRuntime or a stand-in called alike; None loads the one set-up built,
        which fails with YamnetRuntime's error (how to set it up) when there is none."""
        check_steer_method(steer_method)
        if yamnet is None:
            from agent.localize.yamnet import YamnetRuntime  # noqa: PLC0415

            yamnet = YamnetRuntime(threads=threads)
        self.encoder, self.yamnet = encoder, yamnet
        self.min_score, self.max_confidence = float(min_score), float(max_confidence)
        self.steer_method, self.table = steer_method, table
        self.name = name or f"{encoder.name}:yamnet"

    @property
    def runtime(self):
        """The encoder's runtime (EncoderRuntime): its labels, frame rate, mirror and head settings."""
        return self.encoder.runtime

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        """The encoder's sources of the clip (EncoderLocalizer.localize, same order and fields),
        each label as `relabel` decides from YAMNet's scores on the source's stretch."""
        rt, cfg = self.encoder.runtime, self.encoder.decode
        found = decode_active(*self.encoder.frames(clip), rt.slot_labels, rt.output_rate_hz, cfg)
        sources = [s for s, _ in found]
        can = dict(zip(LABELS, expressible_labels(LABELS, self.table), strict=True))
        if self.min_score > 1 or not any(can.get(s.label, False) and s.confidence < self.max_confidence
                                         for s in sources):
            return sources  # nothing could change: YAMNet is not run
        scores = np.zeros((len(sources), len(LABELS)))
        for i, (s, active) in enumerate(found):  # YAMNet hears only the sources the rule may rename
            if can.get(s.label, False) and s.confidence < self.max_confidence:
                scores[i] = self._scores(clip, s, active, rt.output_rate_hz)
        labels = relabel([s.label for s in sources], [s.confidence for s in sources], scores, self.min_score,
                         self.max_confidence, rt.labels, self.table)
        return [s if lab == s.label else dataclasses.replace(s, label=lab)
                for s, lab in zip(sources, labels, strict=True)]

    def _scores(self, clip: Clip, source: SourceEstimate, active: np.ndarray, frame_rate_hz: float) -> np.ndarray:
        if clip.audio is not None:
            return source_scores(self.yamnet, clip.audio, clip.sample_rate_hz, source, active, frame_rate_hz,
                                 self.steer_method)
        import soundfile as sf  # noqa: PLC0415

        info = sf.info(str(clip.path))  # a long clip: read only the source's stretch
        rate = int(info.samplerate)
        start_s, end_s = analysis_window(active, frame_rate_hz, info.frames / rate)
        a, b = window_samples(rate, start_s, end_s)
        x, _ = sf.read(str(clip.path), start=a, stop=b, dtype="float32", always_2d=True)
        return yamnet_source_scores(self.yamnet, np.ascontiguousarray(x.T), rate, start_s, source.azimuth_deg,
                                    source.elevation_deg, active, frame_rate_hz, self.steer_method)
