"""A second encoder names the first one's sources (the model option `encoder:names=DIR`).

An encoder fine-tuned on real recordings names them far better than the shipped one but, on
this CPU, loses a real source's elevation while it learns (docs/encoder-history.md, stages
18-19): names and directions pull on the same heads. Here each does what it does best. The
base encoder decodes the clip as always; every source it finds keeps its direction, distance
and confidence (the SourceEstimate the plain encoder returns) and takes the label of the
namer's source that is the same sound-maker:
- the namer decodes the clip with its own decoding;
- a namer source is the same sound-maker when it is active on at least MIN_OVERLAP of the
  base source's active frames and its lateral angle (the interaural-polar one: what two ears
  fix, and what a real-sound fine-tune keeps, unlike elevation and front/back) is within
  MAX_LATERAL_DEG of the base source's;
- among those, the one active on the most of those frames names it (ties: the closer lateral
  angle). A base source with none keeps its own label. Each base source is decided alone, so
  two of them may end up with one label, each at its own direction (two talkers).
Both encoders run on the whole clip: about twice the plain encoder's compute (RTF 0.01 each).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.core.errors import BinauraError
from agent.core.geometry import lateral_angle_deg
from agent.core.predictor import Clip
from agent.core.scene import SourceEstimate
from agent.core.seld import decode_active

# Fixed before the namer was trained or scored (docs/encoder-history.md, stage 20's rule).
#: Share of the base source's active frames on which a namer source must be active too.
MIN_OVERLAP = 0.3
#: Largest difference of lateral angles (deg) between a base source and the namer source that names it.
MAX_LATERAL_DEG = 25.0


def pick_names(base: list[tuple[SourceEstimate, np.ndarray]], namer: list[tuple[SourceEstimate, np.ndarray]],
               min_overlap: float = MIN_OVERLAP, max_lateral_deg: float = MAX_LATERAL_DEG) -> list[str]:
    """Each base (source, active frames (T,) bool) -> the label it takes: that of the namer
    source (source, active frames) active on the most of its frames, among those active on at
    least min_overlap of them within max_lateral_deg of lateral angle; else its own label."""
    n = base[0][1].shape[0] if base else None
    for _, t_on in namer if base else ():
        if t_on.shape[0] != n:
            raise BinauraError(f"the namer's frames ({t_on.shape[0]}) do not match the encoder's ({n})")
    namer_lat = [lateral_angle_deg(t.azimuth_deg, t.elevation_deg) for t, _ in namer]
    labels = []
    for s, on in base:
        n_on = int(on.sum())
        lat = lateral_angle_deg(s.azimuth_deg, s.elevation_deg)
        best, best_key = s.label, None
        for (t, t_on), t_lat in zip(namer, namer_lat, strict=True):
            shared = int((on & t_on).sum())
            gap = abs(t_lat - lat)
            if n_on == 0 or shared < min_overlap * n_on or gap > max_lateral_deg:
                continue
            key = (shared, -gap)
            if best_key is None or key > best_key:
                best, best_key = t.label, key
        labels.append(best)
    return labels


def active_sources(localizer, clip: Clip) -> list[tuple[SourceEstimate, np.ndarray]]:
    """An EncoderLocalizer's decoded sources of the clip, each with its slot's active frames."""
    rt = localizer.runtime
    return decode_active(*localizer.frames(clip), rt.slot_labels, rt.output_rate_hz, localizer.decode)


class NamedLocalizer:
    """An EncoderLocalizer whose sources another encoder names (module docstring): the base
    encoder's directions, distances and confidences, the namer's labels (`pick_names`)."""

    needs_audio = True
    reads_files = True

    def __init__(self, encoder, namer, name: str | None = None, min_overlap: float = MIN_OVERLAP,
                 max_lateral_deg: float = MAX_LATERAL_DEG):
        """encoder, namer: EncoderLocalizers (anything with `runtime`, `decode` and `frames(clip)`)
        on the same output frame rate; the namer's labels must be binaura labels the base knows."""
        if abs(encoder.runtime.output_rate_hz - namer.runtime.output_rate_hz) > 1e-9:
            raise BinauraError(f"the namer runs at {namer.runtime.output_rate_hz} frames/s, the encoder at "
                               f"{encoder.runtime.output_rate_hz}: expected the same frame rate")
        unknown = sorted(set(namer.runtime.labels) - set(encoder.runtime.labels))
        if unknown:
            raise BinauraError(f"the namer knows label(s) {unknown} that the encoder does not; expected a namer "
                               f"over the encoder's labels {list(encoder.runtime.labels)}")
        self.encoder, self.namer = encoder, namer
        self.min_overlap, self.max_lateral_deg = float(min_overlap), float(max_lateral_deg)
        self.name = name or f"{encoder.name}:names"

    @property
    def runtime(self):
        """The base encoder's runtime (its labels, frame rate, mirror and head settings)."""
        return self.encoder.runtime

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        """The base encoder's sources (same order, directions and fields), labelled by the namer."""
        base = active_sources(self.encoder, clip)
        if not base:
            return []
        labels = pick_names(base, active_sources(self.namer, clip), self.min_overlap, self.max_lateral_deg)
        return [s if lab == s.label else dataclasses.replace(s, label=lab)
                for (s, _), lab in zip(base, labels, strict=True)]
