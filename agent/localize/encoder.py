"""The trained encoder on the device: ONNX Runtime, numpy features, no torch.

`EncoderRuntime` loads an exported encoder (encoder.json manifest + ONNX file),
checks checksums and contract versions, and runs feature frames through it.
`EncoderLocalizer` is the Localizer the benchmark and the demo use;
`StreamingEncoder` feeds audio hop by hop and returns exactly the frames a
whole-file pass would (the network's time reach is finite and recorded in the
manifest): with the export's front/back pair it computes each front frame once
and keeps the few the causal temporal blocks read; without it, overlapping
windows reproduce the offline result.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.core.audio import resample_to
from agent.core.digest import sha256_file  # noqa: F401  (exported: export and tests import it from here)
from agent.core.errors import BinauraError
from agent.core.features import (
    SPATIAL_CHANNELS,
    FeatureConfig,
    StreamingFeatures,
    check_head_scale,
    compute_features,
    mirror_spatial,
)
from agent.core.predictor import LONG_CLIP_S, Clip
from agent.core.scene import SourceEstimate
from agent.core.seld import DecodeConfig, decode_clip
from agent.core.tracks import check_tracks, slot_labels
from agent.localize.mirror import check_mirror_mode, combine_mirror

MANIFEST = "encoder.json"
MANIFEST_FORMAT = "binaura-encoder-onnx-v1"
#: Coordinate convention version (ARCHITECTURE.md): +x ahead, +y left, +z up, azimuth CCW.
CONVENTION = "binaura-coords-1"
#: The encoder shipped in this repository (produced by `binaura train encoder` + `binaura export encoder`).
DEFAULT_ENCODER_DIR = Path(__file__).resolve().parent.parent / "assets" / "encoder"
OUTPUTS = ("accdoa", "log_distance", "class_logits", "spatial_emb", "semantic_emb")


@dataclass
class EncoderFrames:
    """Encoder outputs for consecutive output frames starting at frame `start`."""

    start: int
    accdoa: np.ndarray  # (T, S, 3): S = tracks x C slots (EncoderRuntime.slot_labels)
    log_distance: np.ndarray  # (T, S)
    class_logits: np.ndarray  # (T, C)
    spatial_emb: np.ndarray  # (T, Ds)
    semantic_emb: np.ndarray  # (T, Dm)

    @property
    def n(self) -> int:
        return self.accdoa.shape[0]


class EncoderRuntime:
    """An exported encoder folder, validated, with an ONNX Runtime session."""

    def __init__(self, path: str | os.PathLike | None = None, precision: str = "fp32", threads: int = 1,
                 mirror_tta: bool | None = None, head_scale: float = 1.0, mirror_mode: str | None = None):
        """mirror_tta: run each window also left-right mirrored and combine (twice the compute);
        None takes the export's own choice (manifest "mirror_tta", made on a selection set when
        it was shipped; off when absent). mirror_mode: how the two passes combine, "mean" or
        "polar" (agent.localize.mirror); None takes the manifest's "mirror_mode" ("mean" when
        absent). head_scale: the listening head's size over the
        encoder's training head (KEMAR, 1.0); the features are warped to match
        (agent.core.features), e.g. 1.2 for a robot head a fifth wider than KEMAR."""
        self.head_scale = check_head_scale(head_scale)
        import onnxruntime as ort  # noqa: PLC0415

        root = Path(path) if path is not None else DEFAULT_ENCODER_DIR
        if root.is_file() and root.suffix == ".onnx":
            root = root.parent
        mpath = root / MANIFEST
        try:
            self.manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as e:
            raise BinauraError(f"{mpath}: cannot read the encoder manifest ({e}); export one with "
                               f"`binaura export encoder`") from e
        m = self.manifest
        problems = []
        if m.get("format") != MANIFEST_FORMAT:
            problems.append(f"format is {m.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        if m.get("coordinate_convention") != CONVENTION:
            problems.append(f"coordinate convention {m.get('coordinate_convention')!r}, expected {CONVENTION!r}")
        files = m.get("files", {})
        if precision not in files:
            problems.append(f"no {precision} model; this export has {sorted(files)}")
        stream = m.get("streaming") or {}
        # an export without a stateful pair (for this precision) streams by windows
        stream_files = stream.get("files", {}).get(precision, {})
        if stream_files and set(stream_files) != {"front", "back"}:
            problems.append(f"streaming files for {precision} must name front and back, got {sorted(stream_files)}")
            stream_files = {}
        if stream_files and not {"history_frames", "front_context_frames"} <= set(stream):
            problems.append("streaming needs history_frames and front_context_frames")
        for rel in [*files.values(), *stream_files.values()]:
            f = root / rel
            if not f.exists():
                problems.append(f"{rel} is missing")
            elif sha256_file(f) != m.get("sha256", {}).get(rel):
                problems.append(f"{rel}: SHA-256 does not match the manifest")
        if problems:
            raise BinauraError(f"{root}: refusing the encoder: " + "; ".join(problems))
        self.root = root
        self.features = FeatureConfig.from_dict(m["features"])
        #: the class vocabulary (class_logits' axis)
        self.labels = tuple(m["labels"])
        #: output tracks per class (multi-ACCDOA; absent in the manifest: one) and the label of
        #: each slot of the accdoa and log_distance axis (track * C + class): what decoding reads
        self.tracks = check_tracks(m.get("tracks", 1), f"{mpath}: tracks")
        self.slot_labels = slot_labels(self.labels, self.tracks)
        self.time_pool = int(m["time_pool"])
        self.context_left, self.context_right = (int(x) for x in m["context_frames"])
        self.output_rate_hz = self.features.frame_rate_hz / self.time_pool
        #: decoding tuned on validation clips at training time (DecodeConfig defaults otherwise)
        self.decode = DecodeConfig(**m.get("decode", {}))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(root / files[precision]), opts, providers=["CPUExecutionProvider"])
        self.precision = precision
        self._opts = opts
        self._stream_files = stream_files
        self._stream_sessions = None  # loaded on first use
        #: front frames (after the CNN) that one output frame's temporal blocks read, and the
        #: (left, right) input frames the front reads: what the stateful stream keeps
        self.history_frames = int(stream.get("history_frames", 0))
        self.front_context_left, self.front_context_right = (int(x) for x in stream.get(
            "front_context_frames", (self.context_left, self.context_right)))
        #: also run the left-right mirrored scene and combine it back (twice the compute)
        self.mirror_tta = bool(m.get("mirror_tta", False)) if mirror_tta is None else bool(mirror_tta)
        #: how the two passes combine (agent.localize.mirror.MIRROR_MODES)
        self.mirror_mode = check_mirror_mode(m.get("mirror_mode", "mean") if mirror_mode is None else mirror_mode,
                                             f"{mpath}: mirror_mode" if mirror_mode is None else "mirror_mode")

    def run(self, spatial: np.ndarray, semantic: np.ndarray) -> EncoderFrames:
        """spatial (6, T, F), semantic (T, F) feature frames -> T // time_pool output frames.

        With mirror_tta the batch holds the clip and its left-right mirror image (ears
        swapped, mirror_spatial); the mirror's ACCDOA vectors are reflected back (y -> -y)
        and combined with the clip's as `mirror_mode` says (agent.localize.mirror), the
        log-distances averaged. Class logits come from the
        mono mix, which mirroring leaves alone; the embeddings stay the clip's own."""
        sp, se = self._batch(spatial, semantic)
        return self._frames(self.session.run(list(OUTPUTS), {"spatial": sp, "semantic": se}))

    @property
    def can_stream_state(self) -> bool:
        """Whether this export has the front/back pair that lets a stream compute each front
        frame once (`StreamingEncoder` then keeps front frames instead of re-running windows)."""
        return bool(self._stream_files)

    def run_front(self, spatial: np.ndarray, semantic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """spatial (6, T, F), semantic (T, F) -> front frames (B, T // time_pool, Ds) and
        (B, ..., Dm), B = 2 with mirror averaging (the clip, then its mirror image)."""
        sp, se = self._batch(spatial, semantic)
        return tuple(self._sessions()[0].run(None, {"spatial": sp, "semantic": se}))

    def run_back(self, spatial_front: np.ndarray, semantic_front: np.ndarray) -> EncoderFrames:
        """Front frames from `run_front` -> the frames `run` gives for them: output frame j
        reads front frames j - history_frames .. j (zeros before the first one given)."""
        out = self._sessions()[1].run(list(OUTPUTS), {"spatial_front": spatial_front,
                                                      "semantic_front": semantic_front})
        return self._frames(out)

    def _sessions(self):
        if not self._stream_files:
            raise BinauraError(f"{self.root}: this export has no front/back pair for a stateful stream; "
                               f"re-export it with `binaura export encoder`")
        if self._stream_sessions is None:
            import onnxruntime as ort  # noqa: PLC0415

            self._stream_sessions = tuple(
                ort.InferenceSession(str(self.root / self._stream_files[k]), self._opts,
                                     providers=["CPUExecutionProvider"]) for k in ("front", "back"))
        return self._stream_sessions

    def _batch(self, spatial: np.ndarray, semantic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sp = spatial[None].astype(np.float32)
        se = semantic[None].astype(np.float32)
        if self.mirror_tta:
            sp = np.concatenate([sp, mirror_spatial(sp)])
            se = np.concatenate([se, se])
        return sp, se

    def _frames(self, out: list[np.ndarray]) -> EncoderFrames:
        frames = EncoderFrames(0, *(o[0] for o in out))
        if self.mirror_tta:
            frames.accdoa, frames.log_distance = combine_mirror(frames.accdoa, frames.log_distance,
                                                                out[0][1], out[1][1], self.mirror_mode,
                                                                self.tracks)
        return frames

    def run_audio(self, audio: np.ndarray, sample_rate_hz: int, where: str = "audio") -> EncoderFrames:
        audio = resample_to(audio, sample_rate_hz, self.features.sample_rate_hz)
        spatial, semantic = compute_features(audio, self.features.sample_rate_hz, self.features, where,
                                             self.head_scale)
        if spatial.shape[1] < self.time_pool:
            raise BinauraError(f"{where}: too short for one encoder frame "
                               f"(need {self.features.n_fft + self.time_pool * self.features.hop_length} samples)")
        return self.run(spatial, semantic)


class EncoderLocalizer:
    """Localizer over a whole clip: features -> ONNX encoder -> ACCDOA decoding."""

    needs_audio = True

    def __init__(self, path: str | os.PathLike | None = None, precision: str = "fp32", threads: int = 1,
                 decode: DecodeConfig | None = None, name: str | None = None, mirror_tta: bool | None = None,
                 head_scale: float = 1.0, mirror_mode: str | None = None):
        self.runtime = EncoderRuntime(path, precision, threads, mirror_tta=mirror_tta, head_scale=head_scale,
                                      mirror_mode=mirror_mode)
        self.decode = decode or self.runtime.decode
        self.name = name or ("encoder" if path is None else f"encoder:{Path(path).name}")

    #: long clips may come as a path (`Clip.path`): they are read and heard block by block
    reads_files = True

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        """One pass over a short clip; a long one (over LONG_CLIP_S, or given by path) goes
        through the exact streaming path in bounded memory (agent.localize.long_clip)."""
        accdoa, log_distance = self.frames(clip)
        return decode_clip(accdoa, log_distance, self.runtime.slot_labels, self.runtime.output_rate_hz, self.decode)

    def frames(self, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
        """The clip's accdoa (T, S, 3) and log_distance (T, S) at runtime.output_rate_hz, what
        `localize` decodes (agent.localize.relabel reads each source's active frames from them)."""
        from agent.localize.long_clip import array_blocks, encode_blocks, encode_file  # noqa: PLC0415

        if clip.audio is None:
            if clip.path is None:
                raise BinauraError(f"{clip.scene_id}: the clip has neither audio nor a path to read it from")
            return encode_file(self.runtime, clip.path)
        if clip.audio.shape[-1] > LONG_CLIP_S * clip.sample_rate_hz:
            return encode_blocks(self.runtime, array_blocks(clip.audio, clip.sample_rate_hz),
                                 clip.sample_rate_hz, clip.scene_id)
        frames = self.runtime.run_audio(clip.audio, clip.sample_rate_hz, clip.scene_id)
        return frames.accdoa, frames.log_distance


class StreamingEncoder:
    """Audio in chunks of any size -> encoder frames, equal to a whole-stream pass.

    Every hop it emits the output frames whose right context has arrived; frames still
    waiting for it go out with the next hop. `flush()` ends the stream. Two ways, the same
    frames:
    - stateful (when the export has the front/back pair, `runtime.can_stream_state`): the
      per-frame front (CNN) runs once on the new frames plus its short context and the
      front frames are kept; the causal temporal blocks and heads then run on the last
      `history_frames` kept front frames plus the new ones. About half the compute of:
    - windows: each hop re-runs the whole network on the new frames plus its full left
      context (window starts aligned to the time pooling).
    """

    def __init__(self, runtime: EncoderRuntime, hop_frames: int = 5, stateful: bool | None = None):
        """stateful: None takes it when the runtime can (`can_stream_state`)."""
        if hop_frames < 1:
            raise BinauraError(f"hop_frames must be >= 1, got {hop_frames}")
        can = bool(getattr(runtime, "can_stream_state", False))
        if stateful and not can:
            raise BinauraError("stateful streaming needs an export with the front/back pair; re-export the "
                               "encoder with `binaura export encoder`, or pass stateful=False")
        self.rt = runtime
        self.hop_frames = hop_frames
        self.stateful = can if stateful is None else bool(stateful)
        self.features = StreamingFeatures(runtime.features, runtime.head_scale)
        self.reset()

    def reset(self) -> None:
        self.features.reset()
        self._spatial = np.zeros((len(SPATIAL_CHANNELS), 0, self.rt.features.n_mels), np.float32)
        self._semantic = np.zeros((0, self.rt.features.n_mels), np.float32)
        self._buf_start = 0  # input frame index of the buffer's first frame
        self.next_out = 0  # next output frame to emit (and, stateful, next front frame to compute)
        self._front: tuple[np.ndarray, np.ndarray] | None = None  # kept front frames (B, T, D) x 2
        self._front_start = 0  # output frame index of the first kept front frame

    @property
    def latency_s(self) -> float:
        """Audio needed after an output frame's own span before it can be emitted."""
        f = self.rt.features
        return (self.rt.context_right - self.rt.time_pool + 1) * f.hop_length / f.sample_rate_hz + \
            (f.n_fft - f.hop_length) / f.sample_rate_hz

    def push(self, chunk: np.ndarray) -> EncoderFrames | None:
        sp, se = self.features.push(chunk)
        self._spatial = np.concatenate([self._spatial, sp], axis=1)
        self._semantic = np.concatenate([self._semantic, se], axis=0)
        n_total = self._buf_start + self._spatial.shape[1]
        p, right = self.rt.time_pool, self.rt.context_right
        last = (n_total - 1 - right) // p  # last output frame whose inputs have all arrived
        if last - self.next_out + 1 < self.hop_frames:
            return None
        return self._emit(last, n_total)

    def flush(self) -> EncoderFrames | None:
        n_total = self._buf_start + self._spatial.shape[1]
        last = n_total // self.rt.time_pool - 1
        return self._emit(last, n_total) if last >= self.next_out else None

    def _window_start(self) -> int:
        """First input frame the next output frame needs (through the front only, when
        stateful), rounded down to the time pooling."""
        p = self.rt.time_pool
        left = self.rt.front_context_left if self.stateful else self.rt.context_left
        return max(0, (p * self.next_out - left) // p * p)

    def _emit(self, last: int, n_total: int) -> EncoderFrames:
        p = self.rt.time_pool
        start = self._window_start()
        a, b = start - self._buf_start, n_total - self._buf_start
        k0, k1 = self.next_out - start // p, last - start // p + 1
        if self.stateful:
            hs, hm = self.rt.run_front(self._spatial[:, a:b], self._semantic[a:b])
            new = (hs[:, k0:k1], hm[:, k0:k1])
            if self._front is not None and self._front[0].shape[0] != hs.shape[0]:
                raise BinauraError("the runtime's mirror_tta changed during a stateful stream; reset() the "
                                   "stream after changing it")
            self._front = new if self._front is None else tuple(
                np.concatenate([old, x], axis=1) for old, x in zip(self._front, new, strict=True))
            first = max(0, self.next_out - self.rt.history_frames)  # what the new frames' blocks read
            cut = first - self._front_start
            out = self.rt.run_back(*(x[:, cut:] for x in self._front))
            k0, k1 = self.next_out - first, last - first + 1
        else:
            out = self.rt.run(self._spatial[:, a:b], self._semantic[a:b])
        frames = EncoderFrames(self.next_out, *(x[k0:k1] for x in (out.accdoa, out.log_distance, out.class_logits,
                                                                   out.spatial_emb, out.semantic_emb)))
        self.next_out = last + 1
        keep_from = self._window_start()  # drop what no later window needs
        cut = keep_from - self._buf_start
        if cut > 0:
            self._spatial = self._spatial[:, cut:]
            self._semantic = self._semantic[cut:]
            self._buf_start = keep_from
        if self.stateful:
            keep = max(0, self.next_out - self.rt.history_frames) - self._front_start
            if keep > 0:
                self._front = tuple(x[:, keep:] for x in self._front)
                self._front_start += keep
        return frames
