"""Narration spoken aloud with espeak-ng, for hearing devices and headsets (issue 21).

espeak-ng (the Debian package of that name, in the Makefile's DEBS) is small, offline and
starts in milliseconds: right for a Jetson-class board. Speaking is slow next to the
pipeline (a sentence takes 2-3 s), so a background thread speaks from a short bounded queue:
`say` never blocks the caller, and when speech falls behind, the oldest sentences are dropped
and counted (`speech_dropped`) rather than read out late: a listener wants where things are
now, not a backlog.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import BinauraError, ConfigError

PACKAGE = "espeak-ng"


def find_espeak(executable: str = "espeak-ng") -> str:
    """The full path of the espeak-ng program, or an error that names the package to install."""
    path = shutil.which(executable)
    if path is None:
        raise BinauraError(f"{executable!r} not found: speaking narration needs the Debian package {PACKAGE} "
                           f"(sudo apt-get install {PACKAGE}; `make` installs it with the other DEBS)")
    return path


_METRES = re.compile(r"\b(\d+(?:\.\d+)?) m\b")


def spoken_form(text: str) -> str:
    """A sentence as it should be read aloud: "2 m" -> "2 metres" (espeak says "m")."""
    return _METRES.sub(lambda m: f"{m.group(1)} metre{'' if m.group(1) == '1' else 's'}", text)


def _argv(exe: str, voice: str, rate_wpm: int, text: str, wav: str | None = None) -> list[str]:
    out = [exe, "-v", voice, "-s", str(rate_wpm)]
    if wav is not None:
        out += ["-w", wav]
    return out + ["--", spoken_form(text)]  # "--": a sentence may start with "-"


def render_wav(text: str, path: str | Path, voice: str = "en", rate_wpm: int = 170,
               executable: str = "espeak-ng") -> Path:
    """Speak text into a wav file (mono, espeak's 22.05 kHz) instead of the loudspeaker."""
    path = Path(path)
    res = subprocess.run(_argv(find_espeak(executable), voice, rate_wpm, text, str(path)),
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0 or not path.is_file():
        raise BinauraError(f"espeak-ng could not render {text!r} to {path}: {res.stderr.strip()}")
    return path


@dataclass
class SpeakerConfig:
    """voice: an espeak-ng voice (`espeak-ng --voices`); rate_wpm: words per minute; max_queue:
    sentences waiting at most (2: one being read, one next; more is a backlog); max_age_s: a
    sentence that waited longer is dropped (the scene has moved on)."""

    voice: str = "en"
    rate_wpm: int = 170
    max_queue: int = 2
    max_age_s: float = 4.0
    executable: str = "espeak-ng"

    def validate(self) -> SpeakerConfig:
        p = []
        if not isinstance(self.voice, str) or not self.voice:
            p.append(f"voice must be an espeak-ng voice name, got {self.voice!r}")
        if isinstance(self.rate_wpm, bool) or not isinstance(self.rate_wpm, int) or not 80 <= self.rate_wpm <= 450:
            p.append(f"rate_wpm must be an integer in [80, 450] (espeak-ng's range), got {self.rate_wpm!r}")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int) or self.max_queue < 1:
            p.append(f"max_queue must be an integer >= 1, got {self.max_queue!r}")
        if isinstance(self.max_age_s, bool) or not isinstance(self.max_age_s, (int, float)) \
                or not 0 < self.max_age_s < math.inf:
            p.append(f"max_age_s must be > 0, got {self.max_age_s!r}")
        if p:
            raise ConfigError(p, "speaker config")
        return self


class Speaker:
    """Speaks sentences in a background thread. `play` (text -> None, blocking while it speaks)
    replaces espeak-ng, for tests and other engines; `clock` (s) times the queue's staleness."""

    def __init__(self, config: SpeakerConfig | None = None, play: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.config = (config or SpeakerConfig()).validate()
        self._exe = find_espeak(self.config.executable) if play is None else None
        self._play = play or self._espeak
        self._clock = clock
        self._queue: deque[tuple[float, str]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._proc: subprocess.Popen | None = None
        self._n = {"speech_said": 0, "speech_dropped": 0, "speech_errors": 0}
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="binaura-speaker", daemon=True)
        self._thread.start()

    def say(self, text: str) -> bool:
        """Queue a sentence; returns at once. False when closed. A full queue drops its oldest."""
        with self._cond:
            if self._closed:
                return False
            while len(self._queue) >= self.config.max_queue:
                self._queue.popleft()
                self._n["speech_dropped"] += 1
            self._queue.append((self._clock(), str(text)))
            self._cond.notify()
        return True

    def counters(self) -> dict[str, int]:
        """speech_said, speech_dropped (late or crowded out), speech_errors, speech_queued."""
        with self._cond:
            return {**self._n, "speech_queued": len(self._queue)}

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop: drop what waits, cut the sentence being spoken, join the thread."""
        with self._cond:
            self._closed = True
            self._n["speech_dropped"] += len(self._queue)
            self._queue.clear()
            proc = self._proc
            self._cond.notify_all()
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self._thread.join(timeout_s)

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                t_queued, text = self._queue.popleft()
                if self._clock() - t_queued > self.config.max_age_s:
                    self._n["speech_dropped"] += 1
                    continue
            try:
                self._play(text)
            except Exception as e:  # noqa: BLE001 (the speaker thread must outlive one bad sentence)
                with self._cond:
                    self._n["speech_errors"] += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                continue
            with self._cond:
                self._n["speech_said"] += 1

    def _espeak(self, text: str) -> None:
        with self._cond:
            if self._closed:
                return
            self._proc = subprocess.Popen(_argv(self._exe, self.config.voice, self.config.rate_wpm, text),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = self._proc.communicate()
        code = self._proc.returncode
        with self._cond:
            self._proc = None
        if code != 0 and not self._closed:
            raise BinauraError(f"espeak-ng failed ({code}): {err.strip()[-300:]}")
