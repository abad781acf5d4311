"""Source tracks and the events they cause: the tracker and the JSON Lines event schema."""

from agent.track.events import (
    SCHEMA,
    AnswerEvent,
    Event,
    EventWriter,
    HealthEvent,
    NarrationEvent,
    OffsetEvent,
    OnsetEvent,
    TrackEvent,
    UpdateEvent,
    check_event,
    dumps,
)
from agent.track.tracker import (
    Detection,
    DetectionFrame,
    Track,
    Tracker,
    TrackerConfig,
    detections_from_frames,
)

__all__ = [
    "SCHEMA", "AnswerEvent", "Event", "EventWriter", "HealthEvent", "NarrationEvent", "OffsetEvent",
    "OnsetEvent", "TrackEvent", "UpdateEvent", "check_event", "dumps",
    "Detection", "DetectionFrame", "Track", "Tracker", "TrackerConfig", "detections_from_frames",
]
