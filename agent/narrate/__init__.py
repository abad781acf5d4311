"""Narration: short sentences from track changes, without the language model; optional speech."""

from agent.narrate.narrator import NarrationConfig, Narrator
from agent.narrate.phrases import (
    CLASS_PHRASES,
    STYLES,
    ClassPhrases,
    Wording,
    clock_hour,
    distance_phrase,
    phrases_of,
)
from agent.narrate.speak import Speaker, SpeakerConfig, find_espeak, render_wav, spoken_form

__all__ = [
    "NarrationConfig", "Narrator",
    "CLASS_PHRASES", "STYLES", "ClassPhrases", "Wording", "clock_hour", "distance_phrase", "phrases_of",
    "Speaker", "SpeakerConfig", "find_espeak", "render_wav", "spoken_form",
]
