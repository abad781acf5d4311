"""The hub between the pipeline and the server: current state, fan-out, and questions.

The pipeline runs in its own threads and must never wait on a browser, so `publish` only
takes a lock, updates the state and appends one JSON line to each client's bounded queue;
a client whose queue is full loses what is queued (counted in `n_dropped`) and gets a fresh
snapshot in its place, so its radar is right again as soon as it catches up.

How the pipeline uses it:
    hub = Hub()
    hub.set_asker(answer_stream)       # fn(question) -> Iterator[str], text chunks
    server = serve(hub, port=8765)     # agent.serve.server
    for event in events: hub.publish(event)   # every onset/update/offset/narration/health
    server.close()

Questions from the API go through `Hub.ask`, which runs the asker (one question at a time:
the decoder is not re-entrant), passes each chunk on as it comes, and then publishes the
complete AnswerEvent itself. The asker must therefore not publish that answer; questions
the pipeline gets another way (spoken) it may send through `ask` too, or answer and
publish itself.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from agent.core.cues import CueLimits
from agent.core.errors import BinauraError
from agent.track.events import AnswerEvent, Event, dumps

#: Questions longer than this are refused (issue 21: "~500 characters").
MAX_QUESTION_CHARS = 500
#: Orientation samples one POST may carry (a robot batching a second of 100 Hz IMU samples).
MAX_ORIENTATION_SAMPLES = 256
Asker = Callable[[str], Iterator[str]]


class QuestionError(BinauraError):
    """A question the hub will not pass on (empty, too long); the API answers 400."""


class BusyError(BinauraError):
    """Another question is still being answered (or none can be: no asker); the API answers 503."""


class OrientationOffError(BinauraError):
    """Orientation updates were posted, but the listener takes none (not `--orientation api`);
    the API answers 409."""


class Subscription:
    """One client's outgoing queue of JSON lines; filled by the hub, drained by the server.

    `wake` is called (from the publishing thread) when the queue turns non-empty, so an
    asyncio server can hand it `loop.call_soon_threadsafe(...)` and sleep otherwise."""

    def __init__(self, maxsize: int, wake: Callable[[], None] | None):
        self.maxsize = maxsize
        self.dropped = 0
        self._wake = wake
        self._q: deque[str] = deque()
        self._lock = threading.Lock()

    def take(self) -> list[str]:
        """Everything queued, oldest first; empties the queue."""
        with self._lock:
            out = list(self._q)
            self._q.clear()
        return out

    def push(self, line: str) -> None:
        """Queue a message for this client only (answer chunks, errors); never dropped."""
        self._put(line, None)

    def _put(self, line: str, resync: Callable[[], str] | None) -> int:
        with self._lock:
            was_empty = not self._q
            lost = 0
            if resync is not None and len(self._q) >= self.maxsize:
                lost = len(self._q) + 1  # what is queued, and this event
                self._q.clear()
                line = resync()
            self._q.append(line)
            self.dropped += lost
        if was_empty and self._wake is not None:
            try:
                self._wake()
            except RuntimeError:
                pass  # the client's event loop is gone; the server drops it on close
        return lost


class Hub:
    """Thread-safe state of the scene for the API: tracks, the recent log, health, clients."""

    def __init__(self, log_size: int = 200, queue_size: int = 512,
                 clock: Callable[[], float] | None = None, ask_wait_s: float = 30.0):
        """clock: the stream's time in s for answer events; default the latest event's t_s."""
        self.queue_size = queue_size
        self.ask_wait_s = ask_wait_s
        self.n_dropped = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._asker: Asker | None = None
        self._cues: Callable[[], CueLimits | None] | None = None
        self._orientation = None  # agent.track.orientation.OrientationInput, with --orientation api
        self._tracks: dict[int, dict[str, Any]] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._health: dict[str, Any] = {"t_s": None, "counters": {}}
        self._t_s: float | None = None
        self._subs: list[Subscription] = []

    def publish(self, event: Event) -> None:
        """Record one event and send it to every client; never blocks on a client."""
        if not isinstance(event, Event):
            raise TypeError(f"publish takes an agent.track.events.Event, got {type(event).__name__}")
        d = event.to_json()
        line = dumps(event)
        with self._lock:
            self._apply(d)
            for sub in self._subs:
                self.n_dropped += sub._put(line, self._snapshot_line)

    def _apply(self, d: dict[str, Any]) -> None:
        kind = d["type"]
        if d["t_s"] is not None:
            self._t_s = d["t_s"] if self._t_s is None else max(self._t_s, d["t_s"])
        if kind in ("onset", "update"):
            self._tracks[d["track_id"]] = d
        elif kind == "offset":
            self._tracks.pop(d["track_id"], None)
        elif kind in ("narration", "answer"):
            self._log.append(d)
        elif kind == "health":
            self._health = {"t_s": d["t_s"], "counters": dict(d["counters"])}

    def snapshot(self) -> dict[str, Any]:
        """The state a client starts from: {"type": "snapshot", "t_s", "tracks" (their latest
        onset/update event, by id), "log" (narration and answer events, oldest first),
        "health" ({"t_s", "counters"}), "serve" ({"clients", "dropped_events"})}."""
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        return {"type": "snapshot", "t_s": self._t_s,
                "tracks": [dict(self._tracks[k]) for k in sorted(self._tracks)],
                "log": [dict(d) for d in self._log],
                "health": {"t_s": self._health["t_s"], "counters": dict(self._health["counters"])},
                "serve": {"clients": len(self._subs), "dropped_events": self.n_dropped}}

    def _snapshot_line(self) -> str:
        return json.dumps(self._snapshot(), ensure_ascii=False, separators=(", ", ": "))

    def subscribe(self, wake: Callable[[], None] | None = None) -> Subscription:
        """A new client: its queue starts with the current snapshot, atomically with the
        events that follow (none lost, none twice)."""
        sub = Subscription(self.queue_size, wake)
        with self._lock:
            self._subs.append(sub)
            sub._put(self._snapshot_line(), None)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def n_clients(self) -> int:
        with self._lock:
            return len(self._subs)

    def set_asker(self, fn: Asker | None, cues: Callable[[], CueLimits | None] | None = None) -> None:
        """fn(question) -> Iterator[str] of answer text chunks, token by token; None: no answers.
        cues() -> what the input can tell (CueLimits or None), put on each answer event."""
        self._asker = fn
        self._cues = cues

    def ask(self, question: str, on_chunk: Callable[[str], None] | None = None) -> AnswerEvent:
        """Answer one question (blocking; call from a worker thread): each chunk goes to
        on_chunk as it comes, then the complete AnswerEvent is published and returned."""
        q = check_question(question)
        asker = self._asker
        if asker is None:
            raise BusyError("this agent answers no questions (no language model loaded)")
        if not self._ask_lock.acquire(timeout=self.ask_wait_s):
            raise BusyError(f"still answering another question after {self.ask_wait_s:g} s; ask again later")
        try:
            parts = []
            for chunk in asker(q):
                parts.append(str(chunk))
                if on_chunk is not None:
                    on_chunk(str(chunk))
        finally:
            self._ask_lock.release()
        event = AnswerEvent(self._now(), text="".join(parts).strip(), question=q,
                            cues=None if self._cues is None else self._cues())
        self.publish(event)
        return event

    def set_orientation(self, orientation, clock: Callable[[], float] | None = None) -> None:
        """Take posted orientation samples into `orientation` (an OrientationInput); samples
        without t_s are stamped with clock() (the audio stream's clock, s)."""
        self._orientation, self._orientation_clock = orientation, clock

    def orient(self, body: Any) -> dict[str, Any]:
        """One sample or a list of them, as OrientationInput.push_json takes them:
        {"t_s": 1.5, "yaw_deg": 40, "pitch_deg"?, "roll_deg"?} or {"t_s", "quaternion": [w, x, y, z]}.
        Returns {"accepted", "refused", "t_s"}: a sample that is well formed but refused (out of
        order, from the future, not a unit quaternion) is counted, and warned about on the event
        stream, not an error. A malformed body raises QuestionError (the API answers 400)."""
        orientation = self._orientation
        if orientation is None:
            raise OrientationOffError("this listener takes no orientation updates; start it with "
                                      "`binaura listen --orientation api --serve PORT`")
        samples = body if isinstance(body, list) else [body]
        if not samples or len(samples) > MAX_ORIENTATION_SAMPLES:
            raise QuestionError(f"post 1 to {MAX_ORIENTATION_SAMPLES} orientation samples, got {len(samples)}")
        clock = self._orientation_clock
        now = None if clock is None else float(clock())
        try:
            kept = [orientation.push_json(s, now) for s in samples]
        except BinauraError as e:
            raise QuestionError(str(e)) from None
        return {"accepted": sum(kept), "refused": len(kept) - sum(kept), "t_s": now}

    def _now(self) -> float:
        if self._clock is not None:
            return float(self._clock())
        with self._lock:
            return 0.0 if self._t_s is None else float(self._t_s)


def check_question(question: Any) -> str:
    """The question, stripped; QuestionError when it is not a non-empty string of at most
    MAX_QUESTION_CHARS characters."""
    if not isinstance(question, str):
        raise QuestionError(f"the question must be a string, got {type(question).__name__}")
    q = question.strip()
    if not q:
        raise QuestionError("the question is empty")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(f"the question has {len(q)} characters; at most {MAX_QUESTION_CHARS} are allowed")
    return q
