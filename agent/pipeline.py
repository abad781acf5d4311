"""The agent's listening pipeline: PCM blocks in, events out, one hop at a time.

    PcmBlock (any rate) -> resample to the encoder's rate -> streaming encoder (every hop)
      -> frame detections -> tracker (onset / update / offset) -> narrator -> health

`Pipeline.process` is deterministic: the same blocks give the same events, whatever their
size, so replays and tests are exact; the runners (agent/run.py) put threads and queues
around it. Time is the stream's clock (0 = the source's first sample); a block that starts
later than the previous one ended (audio lost upstream) is preceded by silence, counted in
`lost_s`, so the encoder and the tracker never see time jump. Whether the source can carry
front/back and elevation cues is judged once (agent/core/cues.py): one warning if not.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from agent.capture.block import PcmBlock
from agent.core.audio import StreamResampler
from agent.core.cues import BandMeter, CueLimits, rate_limits
from agent.core.errors import BinauraError
from agent.localize.encoder import EncoderFrames, EncoderRuntime, StreamingEncoder
from agent.track.events import Event, HealthEvent, OffsetEvent, WarningEvent
from agent.track.fusion import Fusion, FusionConfig, warning_events
from agent.track.tracker import Tracker, TrackerConfig, detections_from_frames

#: The live agent's tracker settings over TrackerConfig's defaults, chosen on the selection set
#: by the rule in docs/listen.md (a source confirmed on 2 detections, a track held 2 s unheard).
LIVE_TRACKER = {"confirm_hits": 2, "hold_s": 2.0}
#: A block may start this much after the previous one ended before it counts as lost audio.
_CLOCK_SLACK_S = 1e-3
#: A source's band is judged on its first 5 s of audio (a benchmark clip's length); silence defers it.
CUE_CHECK_S = 5.0


@dataclass
class PipelineConfig:
    """hop_frames: encoder output frames per hop (0.1 s each for the shipped encoder): a
    shorter hop reports sooner and costs more (1, chosen with LIVE_TRACKER in docs/listen.md). keep_s: the recent audio and encoder frames
    kept for questions and transcription."""

    hop_frames: int = 1
    detect_threshold: float = 0.5
    health_every_s: float = 5.0
    keep_s: float = 30.0
    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(**LIVE_TRACKER))

    def validate(self) -> PipelineConfig:
        p = []
        if not isinstance(self.hop_frames, int) or self.hop_frames < 1:
            p.append(f"hop_frames must be an integer >= 1, got {self.hop_frames!r}")
        if not 0 < self.detect_threshold < 2:
            p.append(f"detect_threshold must be in (0, 2), got {self.detect_threshold}")
        if not self.health_every_s > 0:
            p.append(f"health_every_s must be > 0, got {self.health_every_s}")
        if not self.keep_s >= 1:
            p.append(f"keep_s must be >= 1, got {self.keep_s}")
        if p:
            raise BinauraError("pipeline config: " + "; ".join(p))
        self.tracker.validate()
        return self


class Pipeline:
    """One stream's state: call `process` with its blocks in order, then `finish`.
    `narrator`: anything with update(t_s, events, tracks) -> list[Event] (agent.narrate).
    `on_detections`: called with each hop's frame detections (DetectionFrames), before the
    tracker sees them (a benchmark scores them as the no-tracker baseline).
    `orientation`: the head's orientation (agent.track.orientation.OrientationInput or
    PathOrientation); with it, world-frame fusion runs after the tracker (agent/track/fusion.py)
    and tracks are reported front/back-resolved in the current head frame. None: as before."""

    def __init__(self, runtime: EncoderRuntime, config: PipelineConfig | None = None, narrator=None,
                 on_detections=None, orientation=None, fusion: FusionConfig | None = None):
        self.cfg = (config or PipelineConfig()).validate()
        self.rt = runtime
        self.rate_hz = runtime.features.sample_rate_hz
        self.encoder = StreamingEncoder(runtime, hop_frames=self.cfg.hop_frames)
        self.tracker = Tracker(self.cfg.tracker)
        self.narrator = narrator
        self.on_detections = on_detections
        self.orientation = orientation
        self.fusion = Fusion(fusion) if orientation is not None else None
        self._lock = threading.Lock()  # tracks, audio and frames are read by question threads
        self._resampler: StreamResampler | None = None
        self._source_rate: int | None = None
        self._band: BandMeter | None = None  # the content rule, until the source's band is judged
        self._cues: CueLimits | None = None  # the judgement (agent/core/cues.py), once made
        self._t_next: float | None = None  # where the next block should start (stream clock)
        self._audio: deque[np.ndarray] = deque()  # recent audio at the encoder's rate
        self._audio_n = 0
        self._frames: deque[EncoderFrames] = deque()
        self._last_seen: dict[int, object] = {}  # track id -> its most confident snapshot (Track)
        self._ended: deque = deque()  # (t_end, Track) of tracks that ended within keep_s
        self._next_health = self.cfg.health_every_s
        self._finished = False
        self.counters: dict[str, float] = {"blocks": 0, "gap_blocks": 0, "lost_s": 0.0, "frames": 0, "hops": 0,
                                           "audio_s": 0.0, "compute_s": 0.0}
        self.extra_counters = None  # callable -> dict: the source's (and others') counters for health events

    # -- the stream ------------------------------------------------------------------------
    def process(self, block: PcmBlock) -> list[Event]:
        if self._finished:
            raise BinauraError("the pipeline has finished; start a new one for a new stream")
        t0 = time.perf_counter()
        if self._source_rate is None:
            self._source_rate = block.rate_hz
            self._resampler = StreamResampler(block.rate_hz, self.rate_hz)
            self._t_next = block.t_s
            self._band = BandMeter(block.rate_hz)
        elif block.rate_hz != self._source_rate:
            raise BinauraError(f"the source changed its rate from {self._source_rate} to {block.rate_hz} Hz mid-stream")
        events: list[Event] = []
        lost = block.t_s - self._t_next
        if lost > _CLOCK_SLACK_S:  # audio lost upstream: silence in its place, counted
            events += self._push(np.zeros((2, int(round(lost * block.rate_hz))), np.float32))
            self.counters["lost_s"] += lost
        self.counters["blocks"] += 1
        self.counters["gap_blocks"] += int(block.gap)
        self._t_next = block.t_s + block.duration_s
        events += self._judge_band(block.samples, block.t_s)
        events += self._push(block.samples)
        self.counters["compute_s"] += time.perf_counter() - t0
        return events

    def finish(self) -> list[Event]:
        """End of stream: the encoder's last frames, every live track's offset, a last health event."""
        if self._finished:
            return []
        events: list[Event] = []
        if self._band is not None and self._cues is None:  # a stream shorter than CUE_CHECK_S
            events += self._judge_band(None, self.stream_t)
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail.shape[-1]:
                events += self._frames_to_events(self.encoder.push(tail))
            events += self._frames_to_events(self.encoder.flush())
        with self._lock:
            ended = self.tracker.finish()
            self._remember(ended, self.stream_t, [])
        events += ended + self._narrate(self.stream_t, ended, [])
        events.append(self.health(self.stream_t))
        self._finished = True
        return events

    def _judge_band(self, samples: np.ndarray | None, t_s: float) -> list[Event]:
        """Judge the source's band: at once for a rate below 32 kHz, else once CUE_CHECK_S of
        its audio went in (block by block, starting at t_s; None: now, on what there is). One
        warning event when it is band-limited."""
        if self._cues is not None:
            return []
        m = self._band
        if samples is not None and not rate_limits(m.rate_hz).limited:
            used = m.push_until(samples, CUE_CHECK_S)
            if used is None:
                return []
            t_s += used / m.rate_hz
        self._cues = m.limits()
        self._band = None
        if not self._cues.limited:
            return []
        return [WarningEvent(t_s, f"Front/back and elevation are not reliable: {self._cues.reason}.", self._cues)]

    @property
    def cues(self) -> CueLimits | None:
        """What the source can carry: the judgement once made, the rate rule alone before it
        (None before the first block)."""
        if self._cues is not None:
            return self._cues
        return None if self._source_rate is None else rate_limits(self._source_rate)

    def _push(self, samples: np.ndarray) -> list[Event]:
        x = self._resampler.push(samples)
        self.counters["audio_s"] += samples.shape[-1] / self._source_rate
        with self._lock:
            self._audio.append(x)
            self._audio_n += x.shape[-1]
            keep = int(self.cfg.keep_s * self.rate_hz)
            while self._audio and self._audio_n - self._audio[0].shape[-1] >= keep:
                self._audio_n -= self._audio.popleft().shape[-1]
        return self._frames_to_events(self.encoder.push(x))

    def _frames_to_events(self, frames: EncoderFrames | None) -> list[Event]:
        if frames is None or frames.n == 0:
            return []
        self.counters["hops"] += 1
        self.counters["frames"] += frames.n
        dets = detections_from_frames(frames, self.rt.slot_labels, self.rt.output_rate_hz,
                                      threshold=self.cfg.detect_threshold)
        if self.on_detections is not None:
            self.on_detections(dets)
        with self._lock:
            self._frames.append(frames)
            while self._frames and (frames.start + frames.n - self._frames[0].start) > \
                    self.cfg.keep_s * self.rt.output_rate_hz + self._frames[0].n:
                self._frames.popleft()
            if self.fusion is None:
                events = self.tracker.update_frames(dets)
            else:
                events = self._fuse(dets)
            tracks = self._live_tracks()  # one snapshot per hop, for memory and narration
            self._remember(events, dets[-1].t_s, tracks)
        t = dets[-1].t_s
        events += self._narrate(t, events, tracks)
        if t >= self._next_health:
            events.append(self.health(t))
            self._next_health = (t // self.cfg.health_every_s + 1) * self.cfg.health_every_s
        return events

    def _fuse(self, dets) -> list[Event]:
        """Tracker then fusion, frame by frame (fusion needs each frame's head pose)."""
        events: list[Event] = []
        for f in dets:
            events += self.tracker.update(f.t_s, f.detections)
            events += self.fusion.update(f.t_s, f.detections, self.tracker.tracks, self.orientation.at(f.t_s))
            events += warning_events(self.orientation.take_warnings())
        return events

    def _live_tracks(self) -> list:
        return self.tracker.tracks if self.fusion is None else self.fusion.tracks

    def _narrate(self, t_s: float, events: list[Event], tracks: list) -> list[Event]:
        if self.narrator is None:
            return []
        return list(self.narrator.update(t_s, events, tracks))

    def _narrator_counters(self) -> dict:
        counters = getattr(self.narrator, "counters", None)
        return dict(counters()) if counters is not None else {}

    @property
    def stream_t(self) -> float:
        """The stream clock at the end of the audio processed so far (s)."""
        return float(self._t_next or 0.0)

    # -- what questions and health read ----------------------------------------------------
    @property
    def tracks(self):
        with self._lock:
            return self._live_tracks()

    def _remember(self, events: list[Event], t_s: float, tracks: list) -> None:
        """Keep each track's latest snapshot, and those of tracks that ended within keep_s
        (a question about the last seconds may name a sound that just stopped)."""
        for e in events:
            if isinstance(e, OffsetEvent) and e.track_id in self._last_seen:
                self._ended.append((e.t_end if e.t_end is not None else t_s, self._last_seen.pop(e.track_id)))
        for tr in tracks:  # an ended track is remembered at its most confident, not
            best = self._last_seen.get(tr.track_id)  # its fading tail (where directions wander)
            if best is None or tr.confidence >= best.confidence:
                self._last_seen[tr.track_id] = tr
        while self._ended and self._ended[0][0] < t_s - self.cfg.keep_s:
            self._ended.popleft()

    def heard_tracks(self, seconds: float) -> list:
        """The live tracks and those that ended within the last `seconds` (at their most
        confident)."""
        with self._lock:
            live = self._live_tracks()
            now = self.tracker.t_s or 0.0
            ended = [tr for t_end, tr in self._ended if t_end >= now - seconds]
        return live + ended

    def recent_audio(self, seconds: float) -> np.ndarray:
        """The last `seconds` of audio at the encoder's rate, (2, n) float32."""
        with self._lock:
            x = np.concatenate(list(self._audio), axis=-1) if self._audio else np.zeros((2, 0), np.float32)
        return x[:, max(0, x.shape[-1] - int(seconds * self.rate_hz)):]

    def recent_frames(self, seconds: float) -> EncoderFrames | None:
        """The encoder's outputs over the last `seconds` (what an audio-language model reads)."""
        with self._lock:
            frames = list(self._frames)
        if not frames:
            return None
        fields = ("accdoa", "log_distance", "class_logits", "spatial_emb", "semantic_emb")
        joined = {k: np.concatenate([getattr(f, k) for f in frames]) for k in fields}
        n = min(len(joined["accdoa"]), int(round(seconds * self.rt.output_rate_hz)))
        end = frames[-1].start + frames[-1].n
        return EncoderFrames(end - n, *(joined[k][-n:] for k in fields))

    def health(self, t_s: float) -> HealthEvent:
        c = {k: (round(v, 3) if isinstance(v, float) else int(v)) for k, v in self.counters.items()}
        c["realtime_factor"] = round(self.counters["audio_s"] / self.counters["compute_s"], 1) \
            if self.counters["compute_s"] > 0 else 0.0
        c["live_tracks"] = len(self.tracks)
        c["tracker_dropped"] = self.tracker.n_dropped
        c.update(self._narrator_counters())
        if self.orientation is not None:
            c.update(getattr(self.orientation, "counters", {}))
            c["orientation_world_frame"] = int(self.fusion.mode in ("world", "held"))
        if self.extra_counters is not None:
            c.update(self.extra_counters())
        return HealthEvent(t_s, c)
