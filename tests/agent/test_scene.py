import pytest

from agent.core.scene import (
    OPTION_LETTERS,
    audio_path_problem,
    option_index,
    option_letter,
    qa_from_json,
)

QA = {"id": "q1", "scene_id": "s1", "level": "L1", "task": "l1_count", "question": "How many sounds?",
      "options": ["1", "2", "3", "4"], "answer": "B"}


def test_option_letters_are_one_definition():
    assert OPTION_LETTERS == "ABCD"
    assert [option_letter(i) for i in range(4)] == ["A", "B", "C", "D"]
    assert [option_index(c) for c in "ABCD"] == [0, 1, 2, 3]
    for bad in (-1, 4, 7):
        with pytest.raises(ValueError, match="at most 4 options"):
            option_letter(bad)
    for bad in ("", "AB", "ABC", "b", "E", " B", None):
        with pytest.raises(ValueError, match="not an option letter"):
            option_index(bad)


@pytest.mark.parametrize("options, answer", [(["1", "2"], "B"), (["1", "2", "3"], "C"), (["1", "2", "3", "4"], "D")])
def test_two_to_four_options_with_their_letters_pass(options, answer):
    item, problems = qa_from_json({**QA, "options": options, "answer": answer})
    assert problems == [] and item.options == options and item.answer == answer


@pytest.mark.parametrize("answer", ["ABC", "AB", "", "b", "E", " B", "B ", "BC"])
def test_answer_must_be_exactly_one_letter(answer):
    item, problems = qa_from_json({**QA, "answer": answer})
    assert item is None and problems, answer


def test_answer_letter_must_name_an_existing_option():
    item, problems = qa_from_json({**QA, "options": ["1", "2", "3"], "answer": "D"})
    assert item is None
    assert problems == ["'answer' must be exactly one option letter of ['A', 'B', 'C'] for 3 options, got 'D'"]


@pytest.mark.parametrize("options", [["1"], [], ["1", "2", "3", "4", "5"], ["1", "2", "3", "4", "5", "6", "7", "8"],
                                     ["1", 2], ["1", ""]])
def test_options_are_two_to_four_strings(options):
    item, problems = qa_from_json({**QA, "options": options, "answer": "A"})
    assert item is None
    assert problems == [f"'options' must be null or a list of 2 to 4 non-empty strings, got {options!r}"]


def test_options_are_distinct():
    item, problems = qa_from_json({**QA, "options": ["1", "2", "2", "4"]})
    assert item is None and problems == ["'options' must be distinct, got ['1', '2', '2', '4']"]


@pytest.mark.parametrize("audio", ["../secret.wav", "audio/../../secret.wav", "..", "/etc/passwd", "//host/share/a.wav",
                                   "C:\\data\\a.wav", "C:/data/a.wav", "audio\\a.wav", "", None, 3])
def test_audio_path_form_is_refused(audio):
    problem = audio_path_problem(audio)
    assert problem is not None and "a relative path inside the dataset folder, e.g. audio/s000001.wav" in problem


@pytest.mark.parametrize("audio", ["audio/s000001.wav", "s1.wav", "./audio/s1.wav", "audio/..wav", "audio/a..b.wav"])
def test_audio_path_form_is_accepted(audio):
    assert audio_path_problem(audio) is None
