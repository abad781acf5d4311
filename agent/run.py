"""The runners that wire a capture source, the pipeline, the outputs and the answerer.

- `Runner.run()` with a source that is not live and not paced (a file with --fast, a scene):
  one thread, block by block: deterministic, what tests and replays use.
- With a live or paced source: the source's blocks go through a bounded queue to the
  pipeline (the capture side never waits on the encoder: a full queue drops the block and
  counts it in `pipeline_overflows`; the pipeline fills the lost time with silence); typed
  questions come in on another thread.
Ctrl-C (KeyboardInterrupt) or `stop()` ends the run cleanly: the source is closed, the
pipeline finishes (every live track gets its offset) and every output is flushed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from agent.capture.block import Source
from agent.pipeline import Pipeline
from agent.track.events import AnswerEvent, Event

#: blocks between capture and pipeline (0.1 s each by default: 5 s of slack)
QUEUE_BLOCKS = 50


class Outputs:
    """Fans events out to sinks (anything with write(event) or publish(event)), under one
    lock: the pipeline thread and question threads both emit."""

    def __init__(self, sinks: list):
        self.sinks = list(sinks)
        self._lock = threading.Lock()
        self.log: list[Event] = []  # every event of the run (for --summary and tests)

    def emit(self, events: list[Event], exclude=None) -> None:
        """exclude: a sink that already has these events (the API's hub publishes the answers
        to the questions it was asked)."""
        if not events:
            return
        with self._lock:
            self.log.extend(events)
            for sink in self.sinks:
                if sink is exclude:
                    continue
                for e in events:
                    (sink.publish if hasattr(sink, "publish") else sink.write)(e)

    def close(self) -> None:
        with self._lock:
            for sink in self.sinks:
                close = getattr(sink, "close", None)
                if close is not None:
                    close()


class Runner:
    """answerer: callable(question, pipeline) -> iterator of answer text chunks (agent.answer),
    or None (questions are then refused with a message)."""

    def __init__(self, source: Source, pipeline: Pipeline, outputs: Outputs,
                 answerer: Callable[[str, Pipeline], Iterator[str]] | None = None,
                 duration_s: float | None = None, paced: bool | None = None, taps: list | None = None):
        """taps: callables given every block after the pipeline (e.g. agent.voice.worker);
        one with counters() adds them to the health events."""
        self.source, self.pipeline, self.outputs = source, pipeline, outputs
        self.taps = list(taps or [])
        self.answerer = answerer
        self.duration_s = duration_s
        self.threaded = source.live if paced is None else (paced or source.live)
        self._stop = threading.Event()
        self.counters = {"pipeline_overflows": 0, "questions": 0}
        pipeline.extra_counters = self._counters

    def _counters(self) -> dict:
        c = {**self.source.counters(), **self.counters}
        for tap in self.taps:
            if hasattr(tap, "counters"):
                c.update(tap.counters())
        return c

    def _process(self, block) -> None:
        self.outputs.emit(self.pipeline.process(block))
        for tap in self.taps:
            tap(block)

    def stop(self) -> None:
        self._stop.set()

    # -- questions -------------------------------------------------------------------------
    def ask_stream(self, question: str, exclude=None) -> Iterator[str]:
        """The answer's text as it is produced; the complete answer is emitted as an event
        (to every output but `exclude`)."""
        self.counters["questions"] += 1
        if self.answerer is None:
            chunks: Iterator[str] = iter(["No answerer is loaded; run with a language model to ask questions."])
        else:
            chunks = self.answerer(question, self.pipeline)
        text = []
        for c in chunks:
            text.append(c)
            yield c
        self.outputs.emit([AnswerEvent(self.pipeline.stream_t, "".join(text).strip(), question,
                                       cues=self.pipeline.cues)], exclude)

    def ask(self, question: str) -> str:
        return "".join(self.ask_stream(question)).strip()

    # -- the stream ------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.threaded:
                self._run_threaded()
            else:
                self._run_inline()
        except KeyboardInterrupt:
            pass
        finally:
            self.source.close()
            self.outputs.emit(self.pipeline.finish())

    def _over(self, t_end: float) -> bool:
        return self._stop.is_set() or (self.duration_s is not None and t_end >= self.duration_s)

    def _run_inline(self) -> None:
        for block in self.source.blocks():
            self._process(block)
            if self._over(block.t_end_s):
                break

    def _run_threaded(self) -> None:
        q: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        done = threading.Event()
        failure: list[BaseException] = []

        def capture():
            try:
                for block in self.source.blocks():
                    if self._stop.is_set():
                        break
                    try:
                        q.put_nowait(block)
                    except queue.Full:
                        self.counters["pipeline_overflows"] += 1
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                failure.append(e)
            finally:
                done.set()

        t = threading.Thread(target=capture, name="binaura-capture", daemon=True)
        t.start()
        try:
            while True:
                try:
                    block = q.get(timeout=0.1)
                except queue.Empty:
                    if done.is_set() and q.empty():
                        break
                    if self._stop.is_set():
                        break
                    continue
                self._process(block)
                if self._over(block.t_end_s):
                    break
        finally:
            self._stop.set()
            self.source.close()
            t.join(timeout=5.0)
        if failure:
            raise failure[0]


def start_repl(runner: Runner, lines, write: Callable[[str], None]) -> threading.Thread:
    """Typed questions: each non-empty line of `lines` (e.g. sys.stdin) is asked while the
    stream runs; the answer streams to `write` as it is produced."""

    def loop():
        for line in lines:
            q = line.strip()
            if not q:
                continue
            write("> ")
            for chunk in runner.ask_stream(q):
                write(chunk)
            write("\n")
        # end of input: questions are over, listening goes on

    t = threading.Thread(target=loop, name="binaura-repl", daemon=True)
    t.start()
    return t
