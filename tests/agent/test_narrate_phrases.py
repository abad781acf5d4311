"""Narration wording: every class has its phrases; directions in words, clock and degrees
follow the coordinate contract (+90 left, -90 right, 180 behind)."""

import pytest

from agent.core.labels import LABELS
from agent.narrate import CLASS_PHRASES, Wording, clock_hour, distance_phrase, phrases_of
from agent.narrate.phrases import join_and, sentence


@pytest.mark.parametrize("label", LABELS)
def test_every_label_has_its_phrases(label):
    ph = phrases_of(label)
    assert ph is CLASS_PHRASES[label]
    assert "start" in ph.started or ph.started in ("an alarm went off", "a doorbell rang", "glass broke")
    assert ph.the.startswith("the ") and "stop" in ph.stopped
    assert ph.noun and ph.another and ph.noun != ph.another


def test_a_class_outside_the_vocabulary_is_spoken_of_by_its_name():
    ph = phrases_of("tea_kettle")
    assert (ph.started, ph.noun, ph.the, ph.stopped) == (
        "a tea kettle started", "a tea kettle", "the tea kettle", "the tea kettle stopped")
    assert phrases_of("owl").noun == "an owl"


@pytest.mark.parametrize("az,words,to_words,clock,degrees", [
    (90.0, "on your left", "to your left", "at 9 o'clock", "90 degrees to your left"),
    (-90.0, "on your right", "to your right", "at 3 o'clock", "90 degrees to your right"),
    (180.0, "behind you", "behind you", "at 6 o'clock", "behind you"),
    (0.0, "ahead of you", "in front of you", "at 12 o'clock", "straight ahead"),
    (30.0, "ahead and to your left", "ahead and to your left", "at 11 o'clock", "30 degrees to your left"),
    (-60.0, "ahead and to your right", "ahead and to your right", "at 2 o'clock", "60 degrees to your right"),
    (135.0, "behind and to your left", "behind and to your left", "at 8 o'clock", "135 degrees to your left"),
    (-150.0, "behind and to your right", "behind and to your right", "at 5 o'clock", "150 degrees to your right"),
    (-179.0, "behind you", "behind you", "at 6 o'clock", "behind you"),
    (2.0, "ahead of you", "in front of you", "at 12 o'clock", "straight ahead"),
])
def test_where_phrases_in_the_three_styles(az, words, to_words, clock, degrees):
    assert Wording("words").at(az) == words and Wording("words").to(az) == to_words
    assert Wording("clock").at(az) == clock and Wording("clock").to(az) == clock.replace("at ", "to ")
    assert Wording("degrees").at(az) == degrees
    assert Wording("degrees").to(az) is None  # "moved 90 degrees to your left" would mean a turn


def test_clock_hours_go_clockwise_seen_from_above_and_round_to_the_nearest():
    assert [clock_hour(a) for a in (0, -30, -60, -90, -120, -150, 180, 150, 120, 90, 60, 30)] == list(
        [12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert clock_hour(100.0) == 9 and clock_hour(106.0) == 8  # 15 deg either side of an hour
    assert clock_hour(-14.0) == 12 and clock_hour(-16.0) == 1


def test_degrees_round_to_the_configured_step():
    assert Wording("degrees").at(47.0) == "45 degrees to your left"
    assert Wording("degrees", degrees_step_deg=10.0).at(47.0) == "50 degrees to your left"
    assert Wording("degrees", degrees_step_deg=1.0).at(-1.2) == "1 degree to your right"


def test_elevation_is_said_only_when_clearly_above_or_below():
    w = Wording("words")
    assert w.at(90.0, 20.0) == "on your left"  # 20 deg up: within the encoder's elevation error
    assert w.at(90.0, 40.0) == "on your left, above you"
    assert w.at(90.0, 80.0) == "above you"  # overhead: the azimuth means little
    assert w.at(-90.0, -40.0) == "on your right, below you"
    assert Wording("clock").to(90.0, 50.0) == "to 9 o'clock, above you"
    assert w.region(90.0, 80.0) == w.region(-90.0, 70.0) == ("overhead",)
    assert w.region(90.0, 0.0) != w.region(90.0, 40.0)


def test_regions_are_sectors_or_clock_hours():
    assert Wording("words").region(10.0) == Wording("words").region(-20.0)  # both "front"
    assert Wording("clock").region(10.0) != Wording("clock").region(-20.0)  # 12 vs 1 o'clock
    assert Wording("degrees").region(10.0) == Wording("words").region(10.0)


@pytest.mark.parametrize("d,text", [
    (None, ""), (0.2, "about 0.5 m away"), (0.8, "about 1 m away"), (1.3, "about 1.5 m away"),
    (1.74, "about 1.5 m away"), (1.9, "about 2 m away"), (2.1, "about 2 m away"), (2.6, "about 3 m away"),
    (7.4, "about 7 m away"), (float("nan"), ""),
])
def test_distance_is_rounded_sensibly(d, text):
    assert distance_phrase(d) == text


def test_sentences_and_lists():
    assert join_and(["a"]) == "a" and join_and(["a", "b"]) == "a and b"
    assert join_and(["a", "b", "c"]) == "a, b and c"
    assert sentence("a dog started barking") == "A dog started barking."


def test_narration_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in {'torch', 'transformers', 'peft', 'trl', 'optimum', 'training', 'export'}:\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import agent.narrate, agent.narrate.narrator, agent.narrate.phrases, agent.narrate.speak\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
