"""The hub between pipeline and server: state from events, bounded fan-out, questions."""

import json
import threading
import time

import pytest

from agent.serve.hub import MAX_QUESTION_CHARS, BusyError, Hub, QuestionError
from agent.track.events import HealthEvent, NarrationEvent, OffsetEvent, OnsetEvent, UpdateEvent


def track(kind, t_s, tid, label, az, dist, t_end=None):
    return kind(t_s, track_id=tid, label=label, azimuth_deg=az, elevation_deg=0.0, distance_m=dist,
                confidence=0.9, uncertainty_deg=3.0, t_start=t_s - 0.2, t_end=t_end)


def test_snapshot_follows_onset_update_offset_narration_and_health():
    hub = Hub()
    hub.publish(track(OnsetEvent, 1.0, 1, "dog", 90.0, 2.0))
    hub.publish(track(OnsetEvent, 1.1, 2, "bird", -45.0, 1.0))
    hub.publish(NarrationEvent(1.2, "a dog started barking on your left", track_id=1, label="dog"))
    hub.publish(track(UpdateEvent, 2.0, 1, "dog", 100.0, 2.5))
    hub.publish(track(OffsetEvent, 3.0, 2, "bird", -45.0, 1.0, t_end=2.0))
    hub.publish(HealthEvent(3.5, {"overflows": 2, "bridge_gaps": 0}))
    s = hub.snapshot()
    assert [(t["track_id"], t["label"], t["azimuth_deg"], t["distance_m"]) for t in s["tracks"]] == [
        (1, "dog", 100.0, 2.5)]
    assert [e["text"] for e in s["log"]] == ["a dog started barking on your left"]
    assert s["health"] == {"t_s": 3.5, "counters": {"bridge_gaps": 0, "overflows": 2}}
    assert s["t_s"] == 3.5 and s["type"] == "snapshot"
    json.dumps(s, allow_nan=False)  # what /api/state sends


def test_log_keeps_the_last_entries_only():
    hub = Hub(log_size=5)
    for i in range(12):
        hub.publish(NarrationEvent(float(i), f"sentence {i}"))
    assert [e["text"] for e in hub.snapshot()["log"]] == [f"sentence {i}" for i in range(7, 12)]


def test_subscriber_gets_snapshot_then_every_event_in_order():
    hub = Hub()
    hub.publish(track(OnsetEvent, 1.0, 1, "dog", 90.0, 2.0))
    wakes = []
    sub = hub.subscribe(lambda: wakes.append(1))
    hub.publish(NarrationEvent(1.5, "hello"))
    hub.publish(track(OffsetEvent, 2.0, 1, "dog", 90.0, 2.0, t_end=1.0))
    lines = [json.loads(x) for x in sub.take()]
    assert [m["type"] for m in lines] == ["snapshot", "narration", "offset"]
    assert lines[0]["tracks"][0]["label"] == "dog"
    assert wakes == [1]  # woken once, when the queue turned non-empty
    hub.unsubscribe(sub)
    hub.publish(NarrationEvent(3.0, "unheard"))
    assert sub.take() == [] and hub.n_clients == 0


def test_slow_client_loses_events_counted_and_is_resynced_never_blocking():
    hub = Hub(queue_size=8)
    slow = hub.subscribe()
    fast = hub.subscribe()
    t0 = time.perf_counter()
    for i in range(1000):
        hub.publish(track(UpdateEvent, i * 0.1, 1, "dog", float(i % 180), 2.0))
        fast.take()
    assert time.perf_counter() - t0 < 2.0  # nobody waited on the slow client
    assert slow.dropped > 900 and fast.dropped == 0
    assert hub.n_dropped == slow.dropped
    lines = [json.loads(x) for x in slow.take()]
    assert len(lines) <= 8
    # whatever it lost, it can rebuild from the snapshot at the head of its queue
    assert lines[0]["type"] == "snapshot"
    assert lines[0]["serve"]["dropped_events"] > 0
    last = lines[-1] if lines[-1]["type"] == "update" else lines[0]["tracks"][0]
    assert last["azimuth_deg"] == float(999 % 180)


def test_ask_streams_chunks_and_publishes_the_answer_once():
    hub = Hub()
    hub.publish(NarrationEvent(4.0, "a dog barks"))
    sub = hub.subscribe()
    hub.set_asker(lambda q: iter(["The dog ", "is on ", "your left."]))
    chunks = []
    ev = hub.ask("  where is the dog?  ", chunks.append)
    assert chunks == ["The dog ", "is on ", "your left."]
    assert (ev.text, ev.question, ev.t_s) == ("The dog is on your left.", "where is the dog?", 4.0)
    published = [json.loads(x) for x in sub.take()][1:]
    assert [(m["type"], m["text"]) for m in published] == [("answer", "The dog is on your left.")]
    assert hub.snapshot()["log"][-1]["question"] == "where is the dog?"


def test_ask_refuses_bad_questions_and_missing_asker():
    hub = Hub()
    with pytest.raises(BusyError, match="no language model"):
        hub.ask("where?")
    hub.set_asker(lambda q: iter(["x"]))
    for bad in ("", "   ", "x" * (MAX_QUESTION_CHARS + 1), None, 3):
        with pytest.raises(QuestionError):
            hub.ask(bad)
    assert hub.ask("x" * MAX_QUESTION_CHARS).text == "x"


def test_one_question_at_a_time():
    hub = Hub(ask_wait_s=0.05)
    gate = threading.Event()

    def slow(q):
        gate.wait(5)
        yield "done"

    hub.set_asker(slow)
    th = threading.Thread(target=hub.ask, args=("first",))
    th.start()
    time.sleep(0.05)
    with pytest.raises(BusyError, match="another question"):
        hub.ask("second")
    gate.set()
    th.join(5)
    assert hub.snapshot()["log"][-1]["question"] == "first"


def test_publish_is_thread_safe():
    hub = Hub(queue_size=100_000)
    sub = hub.subscribe()

    def worker(k):
        for i in range(300):
            hub.publish(track(OnsetEvent if i == 0 else UpdateEvent, i * 0.1, k, "dog", 0.0, 1.0))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(sub.take()) == 1 + 4 * 300
    assert [t["track_id"] for t in hub.snapshot()["tracks"]] == [1, 2, 3, 4]
