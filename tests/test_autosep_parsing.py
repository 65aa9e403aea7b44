"""Answer parsers: compare positions, option letters, tagged texts; prompt sections."""

from __future__ import annotations

import pytest

from autosep.classify import FAILED, UNPARSED, metrics, parse_answers
from autosep.parsing import parse_compare, parse_letter, parse_tagged
from autosep.prompts import initial_prompt, replace_task_section, task_section

CLASSES = ["Black-billed Cuckoo", "Mangrove Cuckoo", "Yellow-billed Cuckoo"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Text 1", 0),
        ("the first one", 0),
        ("first", 0),
        ("First.", 0),
        ("**first**", 0),
        ("Second.", 1),
        ("second", 1),
        ("Text 2", 1),
        ("The second text.", 1),
        ("first or second", None),
        ("Text 1 and Text 2", None),
        ("neither", None),
        ("", None),
    ],
)
def test_parse_compare(answer: str, expected: int | None) -> None:
    assert parse_compare(answer) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("B", 1),
        ("B.", 1),
        ("(B)", 1),
        ("**B**", 1),
        ("Answer: B", 1),
        ("The answer is B.", 1),
        ("B. Mangrove Cuckoo", 1),
        ("B\nThe bill is black.", 1),
        ("I looked closely.\nAnswer: C", 2),
        ("Mangrove Cuckoo", 1),
        ("yellow-billed cuckoo", 2),
        ("c", 2),
        ("A, B", None),
        ("A or B", None),
        ("AB", None),
        ("A. Mangrove Cuckoo", None),
        ("Mangrove Cuckoo or Yellow-billed Cuckoo", None),
        ("nonsense", None),
        ("D", None),
        ("", None),
    ],
)
def test_parse_letter(answer: str, expected: int | None) -> None:
    assert parse_letter(answer, CLASSES) == expected


def test_a_class_inside_another_is_not_a_second_answer() -> None:
    assert parse_letter("Hooded Oriole", ["Oriole", "Hooded Oriole"]) == 1


def test_parse_tagged() -> None:
    text = "Here:\n<START> one\nline <END> and <START>two<END> <START>  <END>"
    assert parse_tagged(text) == ["one\nline", "two"]
    assert parse_tagged("no tags") == []


def test_answers_to_predictions_and_metrics() -> None:
    predictions = parse_answers(["A", "(B)", "both A and B", None], CLASSES)
    assert predictions == [0, 1, UNPARSED, FAILED]
    result = metrics([0, 1, 2, 2], predictions, 3)
    assert (result.answered, result.correct, result.unparsed, result.failed) == (
        3,
        2,
        1,
        1,
    )
    assert result.confusion == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    assert result.macro_f1 == pytest.approx(2 / 3)


def test_task_section_round_trip() -> None:
    prompt = initial_prompt("bird")
    section = task_section(prompt)
    assert section.startswith("Describe the bird")
    assert replace_task_section(prompt, section) == prompt
    changed = replace_task_section(prompt, "# Task\nDescribe the bill.")
    assert changed.startswith("# Task\nDescribe the bill.\n\n# Output format")
    assert replace_task_section("Just text.", "New.") == "New."
