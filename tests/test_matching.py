"""predictions helpers: project ids, the typed prompt, and matching answers to labels."""

from __future__ import annotations

import copy
import json

import pytest

from label_studio_watsonx.labeling import plan_predictions
from label_studio_watsonx.predictions import match_labels, project_id_of, typed_prompt

from tests.fixtures import FOLDER as FIXTURES
INTERACTIVE = json.loads((FIXTURES / "predict_interactive.json").read_text("utf-8"))["body"]
PLAN = plan_predictions(INTERACTIVE["label_config"], "prompt")
CONTEXT = INTERACTIVE["params"]["context"]

CHOICES_ONLY = (
    '<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
    '<Choice value="A"/></Choices></View>'
)


# --- project_id_of ----------------------------------------------------------------------


def test_project_id_from_label_studio_project_key():
    assert project_id_of(INTERACTIVE["project"]) == 1
    assert project_id_of("1.1796397748") == 1
    assert project_id_of("42.1796397748") == 42
    assert project_id_of("7") == 7


@pytest.mark.parametrize("value", [1, 0, 12345])
def test_project_id_of_int(value):
    assert project_id_of(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "abc", "x.123", ".5", " 3", "-1.2", "1a.2", None, 3.0, [1], {"id": 1}],
)
def test_project_id_of_garbage_is_none(value):
    assert project_id_of(value) is None


@pytest.mark.parametrize("value", [True, False])
def test_project_id_of_bool_is_none(value):
    assert project_id_of(value) is None


def test_project_id_of_superscript_digit_is_none():
    assert project_id_of("².1796397748") is None


# --- typed_prompt ---------------------------------------------------------------------


def test_typed_prompt_from_the_interactive_fixture():
    assert typed_prompt(CONTEXT, PLAN) == "Summarize the context"


def test_typed_prompt_joins_several_texts_and_strips():
    context = {
        "result": [
            {"from_name": "response", "value": {"text": ["not this"]}},
            {"from_name": "prompt", "value": {"text": ["  First line", "second  "]}},
        ]
    }

    assert typed_prompt(context, PLAN) == "First line\nsecond"


def test_typed_prompt_accepts_a_single_string_text():
    context = {"result": [{"from_name": "prompt", "value": {"text": "Just a string"}}]}

    assert typed_prompt(context, PLAN) == "Just a string"


def test_typed_prompt_skips_a_blank_item_for_a_later_one():
    context = {
        "result": [
            {"from_name": "prompt", "value": {"text": ["   "]}},
            {"from_name": "prompt", "value": {"text": ["Second try"]}},
        ]
    }

    assert typed_prompt(context, PLAN) == "Second try"


def _context_with_text(text):
    context = copy.deepcopy(CONTEXT)
    context["result"][0]["value"]["text"] = text
    return context


@pytest.mark.parametrize(
    "context",
    [
        None,
        {},
        {"result": []},
        {"result": None},
        {"result": "prompt"},
        {"result": [{"from_name": "response", "value": {"text": ["answer"]}}]},
        _context_with_text(["   ", "\n\t"]),
        _context_with_text("   "),
        _context_with_text([]),
        _context_with_text([1, None, {"a": 1}]),
        _context_with_text(None),
        {"result": [{"from_name": "prompt", "value": "text"}]},
        {"result": [{"from_name": "prompt"}]},
        {"result": ["junk", 1, None, ["prompt"]]},
        "junk",
        ["result"],
        42,
    ],
)
def test_typed_prompt_none_cases(context):
    assert typed_prompt(context, PLAN) is None


def test_typed_prompt_without_prompt_textarea_in_plan_is_none():
    plan = plan_predictions(CHOICES_ONLY, "prompt")

    assert typed_prompt(CONTEXT, plan) is None


# --- match_labels ---------------------------------------------------------------------

SENTIMENT = ["Positive", "Negative", "Neutral"]


@pytest.mark.parametrize(
    "answer", ["Positive", "positive", "  POSITIVE.  ", '"Positive"', "**Positive**", "`positive`!"]
)
def test_exact_answer_case_and_punctuation_insensitive(answer):
    assert match_labels(answer, SENTIMENT, multiple=False) == ["Positive"]


def test_exact_answer_wins_even_for_multiple_choice():
    assert match_labels("Neutral", SENTIMENT, multiple=True) == ["Neutral"]


def test_label_found_case_insensitively_in_a_sentence():
    assert match_labels("The review is clearly NEGATIVE overall.", SENTIMENT, False) == [
        "Negative"
    ]


@pytest.mark.parametrize(
    "answer",
    ["Positively not sure", "unpositive", "Positive_ish", "Positive2", "nonNeutral"],
)
def test_whole_words_only(answer):
    assert match_labels(answer, SENTIMENT, multiple=False) == []


def test_whole_word_next_to_punctuation_matches():
    assert match_labels("Sentiment: (neutral)", SENTIMENT, False) == ["Neutral"]
    assert match_labels("I'd say positive, mostly", SENTIMENT, False) == ["Positive"]


def test_earliest_label_wins_for_single_choice():
    answer = "It reads Negative at first, but Positive later."

    assert match_labels(answer, SENTIMENT, multiple=False) == ["Negative"]


def test_longest_label_wins_at_the_same_position():
    labels = ["New", "New York", "York"]

    assert match_labels("New York is big", labels, multiple=False) == ["New York"]


def test_multiple_returns_all_found_labels_in_label_order():
    answer = "Neutral tone, some negative points, and positive ones"

    assert match_labels(answer, SENTIMENT, multiple=True) == ["Positive", "Negative", "Neutral"]
    assert match_labels("neutral and positive", SENTIMENT, multiple=True) == [
        "Positive",
        "Neutral",
    ]


def test_labels_with_regex_characters_are_matched_literally():
    labels = ["C++", "C", "N/A"]

    assert match_labels("I would pick c++ here", labels, multiple=False) == ["C++"]
    assert match_labels("answer: n/a", labels, multiple=False) == ["N/A"]
    assert match_labels("Cxx", labels, multiple=False) == []


@pytest.mark.parametrize("answer", ["", "   ", "I don't know", "mixed feelings", "..."])
def test_no_match_is_empty(answer):
    assert match_labels(answer, SENTIMENT, multiple=False) == []
    assert match_labels(answer, SENTIMENT, multiple=True) == []


def test_no_labels_gives_empty():
    assert match_labels("Positive", [], multiple=False) == []


def test_never_returns_a_label_not_in_the_list():
    labels = ["Spam", "Ham", "Not spam", "Other"]
    answers = [
        "Spam",
        "SPAM!",
        "not spam",
        "Not spam, it's ham",
        "hamburger spammer",
        "Other.",
        "The answer is: Eggs",
        "spam ham other not spam",
        "positive",
        "\n\n  ham \n",
        "Spam/Ham",
        "ΣPAM",
        "",
        "{labels}",
        "Spam" * 10,
        "Label: 'Ham'",
    ]
    seen = set()
    for answer in answers:
        for multiple in (False, True):
            result = match_labels(answer, labels, multiple)
            assert all(label in labels for label in result), (answer, result)
            assert len(result) == len(set(result)), (answer, result)
            if not multiple:
                assert len(result) <= 1, (answer, result)
            seen.update(result)
    # The loop really exercised matches, not only empty results.
    assert seen == {"Spam", "Ham", "Not spam", "Other"}


def test_specific_results_from_the_mixed_answers():
    labels = ["Spam", "Ham", "Not spam", "Other"]

    assert match_labels("Not spam, it's ham", labels, False) == ["Not spam"]
    assert match_labels("hamburger spammer", labels, True) == []
    assert match_labels("Spam/Ham", labels, True) == ["Spam", "Ham"]
    assert match_labels("spam ham other not spam", labels, True) == [
        "Spam",
        "Ham",
        "Not spam",
        "Other",
    ]
