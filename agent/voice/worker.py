"""Spoken questions beside the live pipeline: blocks go to a worker thread through a bounded
queue (the pipeline never waits on speech recognition, about a second per question), and
each question heard is handed to `on_question` (the runner asks it like a typed one)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from agent.capture.block import PcmBlock
from agent.voice.spoken import SpokenQuestions

#: blocks waiting for the recogniser (0.1 s each: 30 s of audio)
QUEUE_BLOCKS = 300


class VoiceWorker:
    """callable(block): a tap the runner calls with every block (see agent.run.Runner)."""

    def __init__(self, on_question: Callable[[str], None], spoken: SpokenQuestions | None = None):
        self.spoken = spoken or SpokenQuestions()
        self.on_question = on_question
        self._q: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="binaura-voice", daemon=True)
        self._thread.start()

    def __call__(self, block: PcmBlock) -> None:
        try:
            self._q.put_nowait(block)
        except queue.Full:
            self.dropped += 1  # counted in health as voice_dropped_blocks

    def _loop(self) -> None:
        while True:
            block = self._q.get()
            if block is None:
                for q in self.spoken.flush():
                    self.on_question(q.text)
                return
            for q in self.spoken.push(block):
                self.on_question(q.text)

    def counters(self) -> dict[str, int]:
        return {**{f"voice_{k}": int(v) for k, v in self.spoken.counters().items()},
                "voice_dropped_blocks": self.dropped}

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued (a question spoken at the very end is still answered)."""
        self._q.put(None)
        self._thread.join(timeout_s)
