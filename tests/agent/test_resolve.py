"""The sound-word table mends the parser's class arguments (agent/qa/resolve.py)."""

import json

import pytest

from agent.answer.programs import mend_names
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.qa.resolve import FORMAT, SoundWords, base_forms, default_words
from agent.qa.resolve import TABLE as SHIPPED

TABLE = {"format": FORMAT, "words": {"faucet": ["water", 0.25], "tweet": ["bird", 4.7], "dog": ["dog", 20.0],
                                     "phone": ["telephone", 15.0], "mobile": ["water", 8.0],
                                     "rap": ["knocking", 2.0], "ding-dong": ["doorbell", 0.3],
                                     "ding": ["doorbell", 1.0], "dong": ["doorbell", 1.0]},
         "exceptions": {"rapping": "rap"}}


@pytest.fixture
def words():
    return SoundWords(TABLE)


def test_base_forms_follow_wordnets_rules():
    assert "tweet" in base_forms("tweeting", {})
    assert "faucet" in base_forms("faucets", {})
    assert base_forms("rapping", {"rapping": "rap"})[:2] == ["rapping", "rap"]


def test_a_copied_name_becomes_the_class_the_table_gives(words):
    assert words.mend("sector a=ding_dong", "Where is the ding-dong?") == "sector a=doorbell"
    assert words.mend("sector a=ding_dong", "Where is the ding-dong?", classes_too=False) == "sector a=doorbell"
    # inflected forms and the irregular ones
    assert words.mend("sector a=tweeting", "Where is the tweeting?") == "sector a=bird"
    assert words.mend("sector a=rapping", "Where is the rapping?") == "sector a=knocking"


def test_a_class_the_question_supports_is_never_replaced(words):
    assert words.mend("closer a=dog b=bird", "Which is closer, the dog or the tweeting?") == "closer a=dog b=bird"
    # the dog is named; the telephone is not, the tweeting is: only the second argument moves
    assert words.mend("closer a=dog b=telephone", "Which is closer, the dog or the tweeting?") == \
        "closer a=dog b=bird"
    # nothing to replace it with: the program stays as the parser wrote it
    assert words.mend("sector a=engine", "Where is the rumbling?") == "sector a=engine"
    # classes_too=False keeps every class the parser chose
    assert words.mend("sector a=telephone", "Where is the faucet?", classes_too=False) == "sector a=telephone"
    assert words.mend("sector a=telephone", "Where is the faucet?") == "sector a=water"


def test_of_neighbouring_words_the_surer_one_names_the_source(words):
    assert words.named("Where is the mobile phone?") == ["telephone"]
    assert words.named("Is the faucet left of the dog?") == ["water", "dog"]


def test_only_a_label_claim_is_a_class_slot(words):
    assert words.mend("class_present claim=alarm", "Can you hear the faucet?") == "class_present claim=water"
    # a sector claim is not a class: it stays
    assert words.mend("sector a=water claim=left", "Is the faucet on my left?") == "sector a=water claim=left"
    assert words.mend("not a program", "Where is the faucet?") == "not a program"


def test_modes_and_bad_tables_are_checked(tmp_path):
    with pytest.raises(BinauraError, match="expected one of off, copies, all"):
        mend_names("sector a=dog", "Where is the dog?", "some")
    assert mend_names("sector a=ding_dong", "Where is the ding-dong?", "off") == "sector a=ding_dong"
    with pytest.raises(BinauraError, match="format"):
        SoundWords({"words": {}})
    with pytest.raises(BinauraError, match="unknown class"):
        SoundWords({"format": FORMAT, "words": {"cat": ["cat", 1.0]}})
    with pytest.raises(BinauraError, match="unknown class"):
        SoundWords({"format": FORMAT, "words": {}, "phrases": {"tom cat": "cat"}})
    bad = tmp_path / "t.json"
    bad.write_text("{")
    with pytest.raises(BinauraError, match="not a readable sound-word table"):
        SoundWords.load(bad)


def test_the_shipped_table_loads_and_names_everyday_sounds():
    words = default_words()
    assert set(c for c, _ in words.words.values()) <= set(LABELS)
    assert words.class_of("barking") == "dog" and words.class_of("honk") == "car_horn"
    assert words.class_of("typing") == "keyboard" and words.class_of("where") is None
    raw = json.loads(SHIPPED.read_text())
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in raw["license"]


def test_the_templates_own_words_support_no_class():
    """"how" starts "howl" (a dog's word), "can" starts "canine", "many" contains "man", "way"
    is an ambulance's: none of them makes the question name that sound, so a parser's wrong class
    is still mended."""
    words = default_words()
    assert {"how", "can", "many", "way", "recording"} <= words.template_words
    assert not words.supported("How far is it to the tweeting?")  # the bird is named (the table), not a seed
    assert words.mend("distance_m a=dog", "How far is it to the tweeting?") == "distance_m a=bird"
    assert "dog" not in words.supported("Can you pick up the tweeting in this recording?")
    assert "siren" not in words.supported("Which way is the tweeting?")
    # a name word is still support, in any form ("howling" is the dog's)
    assert "dog" in words.supported("How near is the howling?")
    assert words.mend("count", "How many sounds can you hear?") == "count"
    # a table without the list (older builds) supports as before
    bare = SoundWords({k: v for k, v in json.loads(SHIPPED.read_text()).items() if k != "template_words"})
    assert "dog" in bare.supported("How far is it to the tweeting?")


AMBIGUOUS = {**TABLE, "words": {w: v for w, v in TABLE["words"].items() if w != "rap"},
             "ambiguous": {"rap": ["knocking", "water"]}}


def test_an_ambiguous_name_is_settled_by_what_was_heard():
    """"The rapping" is a knock or a tap of water (WordNet): the parser's music, which neither
    the question nor the table supports, becomes the reading that was heard."""
    words = SoundWords(AMBIGUOUS)
    assert words.readings("Is the rapping on my right?") == {"knocking", "water"}
    q = "Is the rapping on my right?"
    assert words.ground("sector a=music claim=right", q, {"knocking", "speech"}) == "sector a=knocking claim=right"
    assert words.ground("class_present claim=music", "Can you hear the rapping?", {"knocking"}) == \
        "class_present claim=knocking"
    # both readings heard, or neither: nothing settles it
    assert words.ground("sector a=music", q, {"knocking", "water"}) == "sector a=music"
    assert words.ground("sector a=music", q, {"speech"}) == "sector a=music"
    # the parser's class was heard, or is a reading, or the question names it: it stays
    assert words.ground("sector a=music", q, {"music", "knocking"}) == "sector a=music"
    assert words.ground("sector a=water", q, {"knocking"}) == "sector a=water"  # "I don't hear ..."
    assert words.ground("closer a=dog b=music", "Is the dog closer than the rapping?", {"knocking"}) == \
        "closer a=dog b=knocking"
    assert words.ground("closer a=dog b=knocking", "Is the dog closer than the rapping?", {"knocking", "water"}) \
        == "closer a=dog b=knocking"
    # a question without an ambiguous word, and a reading another argument holds, change nothing
    assert words.ground("sector a=music", "Where is the dog?", {"knocking"}) == "sector a=music"
    assert words.ground("closer a=knocking b=music", "Is the knock closer than the rapping?", {"knocking"}) == \
        "closer a=knocking b=music"
    # a sector claim is no class
    assert words.ground("sector a=knocking claim=left", q, {"water"}) == "sector a=knocking claim=left"


def test_the_shipped_table_knows_the_rapping_is_ambiguous():
    words = default_words()
    assert {"knocking"} < words.readings("Where is the rapping?")
    assert words.class_of("rapping") is None  # no single class: settled by what is heard
    with pytest.raises(BinauraError, match="unknown class"):
        SoundWords({**TABLE, "ambiguous": {"rap": ["knocking", "cat"]}})
