"""render() and PromptBuilder: templates, typed instructions and label hints."""

from __future__ import annotations

import json

import pytest

from label_studio_watsonx.errors import MissingFieldsError
from label_studio_watsonx.labeling import plan_predictions
from label_studio_watsonx.prompts import PromptBuilder, placeholders, render
from label_studio_watsonx.settings import Settings

from tests.fixtures import FOLDER as FIXTURES
INTERACTIVE = json.loads((FIXTURES / "predict_interactive.json").read_text("utf-8"))["body"]
REFERENCE_CONFIG = INTERACTIVE["label_config"]
TASK = INTERACTIVE["tasks"][0]  # id 3, data {"text": "Water boils at 100 C."}

CHOICES_WITH_RESPONSE = """
<View>
  <Text name="t" value="$text"/>
  <TextArea name="prompt" toName="t"/>
  <TextArea name="response" toName="t"/>
  <Choices name="c" toName="t">
    <Choice value="A"/><Choice value="B"/><Choice value="C"/>
  </Choices>
</View>
"""

CHOICES_ONLY = """
<View>
  <Text name="t" value="$text"/>
  <Choices name="c" toName="t"><Choice value="A"/><Choice value="B"/><Choice value="C"/></Choices>
</View>
"""

MULTI_CHOICES_ONLY = CHOICES_ONLY.replace('<Choices name="c"', '<Choices name="c" choice="multiple"')


def builder(**env: str) -> PromptBuilder:
    return PromptBuilder(Settings.from_env(env))


# --- render ---------------------------------------------------------------------------


def test_render_fills_placeholders():
    assert render("Hi {name}, see {thing}.", {"name": "Ann", "thing": "this"}) == (
        "Hi Ann, see this."
    )


def test_render_tolerates_spaces_inside_braces():
    assert render("[{ name }]", {"name": "Ann"}) == "[Ann]"


def test_render_double_braces_are_literal():
    assert render('JSON: {{"label": "{label}"}}', {"label": "A"}) == 'JSON: {"label": "A"}'
    assert render("{{text}}", {}) == "{text}"


def test_render_single_unpaired_braces_stay():
    assert render("a { b } c }", {" b ": "x", "b": "x"}) == "a x c }"
    assert render("open { only", {}) == "open { only"


def test_render_missing_fields_raise_naming_fields_and_task():
    with pytest.raises(MissingFieldsError) as caught:
        render("{text} {question} {text} {extra}", {"text": "x"}, task_id=17)

    error = caught.value
    assert error.fields == ["question", "extra"]
    assert error.task_id == 17
    assert str(error) == (
        "task 17: the prompt needs data field(s) question, extra, which the task does not have"
    )


def test_render_values_with_braces_are_not_expanded_again():
    values = {"text": "{secret} and {{x}}", "secret": "LEAK"}

    assert render("T: {text}", values) == "T: {secret} and {{x}}"


def test_placeholders_in_order_of_first_use():
    assert placeholders("{b} {a} {{c}} {b} { a }") == ["b", "a"]


# --- PromptBuilder: the default prompt ------------------------------------------------


def test_default_prompt_renders_text_from_task_data():
    prompt = builder().build(plan_predictions(REFERENCE_CONFIG, "prompt"), TASK, None)

    assert prompt.text == "Answer the following question\n\nWater boils at 100 C."
    assert prompt.instruction == "Answer the following question\n\nWater boils at 100 C."


def test_default_prompt_can_use_other_task_fields():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")
    task = {"id": 5, "data": {"text": "Body", "lang": "fr", "meta": {"n": 1}}}

    prompt = builder(DEFAULT_PROMPT="[{lang}] {text} {meta}").build(plan, task, None)

    assert prompt.text == '[fr] Body {"n": 1}'


def test_default_prompt_field_missing_from_task_raises():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")
    task = {"id": 9, "data": {"text": "Body"}}

    with pytest.raises(MissingFieldsError) as caught:
        builder(DEFAULT_PROMPT="{text} in {language}").build(plan, task, None)

    assert caught.value.fields == ["language"]
    assert caught.value.task_id == 9
    assert "task 9" in str(caught.value)
    assert "language" in str(caught.value)


def test_default_prompt_without_the_input_field_raises():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")
    task = {"id": 10, "data": {"other": "x"}}

    with pytest.raises(MissingFieldsError) as caught:
        builder().build(plan, task, None)

    assert caught.value.fields == ["text"]
    assert caught.value.task_id == 10


def test_default_prompt_text_for_hypertext_is_the_readable_text():
    xml = (
        '<View><HyperText name="page" value="$text"/>'
        '<TextArea name="prompt" toName="page"/><TextArea name="response" toName="page"/>'
        "</View>"
    )
    task = {"id": 1, "data": {"text": "<p>Hello <b>world</b></p>"}}

    prompt = builder().build(plan_predictions(xml, "prompt"), task, None)

    assert prompt.text == "Answer the following question\n\nHello world"


# --- PromptBuilder: typed instructions -------------------------------------------------


def test_typed_instruction_with_braces_is_kept_verbatim_in_the_template():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")
    typed = "Use {text} and {{x}}"

    prompt = builder().build(plan, TASK, typed)

    assert prompt.instruction == "Use {text} and {{x}}"
    assert prompt.text == (
        "Read the text below, then follow the instruction.\n\n"
        "Text:\nWater boils at 100 C.\n\n"
        "Instruction: Use {text} and {{x}}"
    )


def test_typed_instruction_uses_a_custom_template():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")

    prompt = builder(PROMPT_TEMPLATE="<<{prompt}>> on <<{text}>>").build(plan, TASK, "Sum up")

    assert prompt.text == "<<Sum up>> on <<Water boils at 100 C.>>"


def test_typed_instruction_without_task_text_raises_when_template_needs_it():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")

    with pytest.raises(MissingFieldsError) as caught:
        builder().build(plan, {"id": 4, "data": {}}, "Summarize")

    assert caught.value.fields == ["text"]
    assert caught.value.task_id == 4


# --- PromptBuilder: USE_INTERNAL_PROMPT -----------------------------------------------


def test_use_internal_prompt_wraps_the_rendered_default_prompt():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")

    prompt = builder(USE_INTERNAL_PROMPT="1", DEFAULT_PROMPT="Translate to French").build(
        plan, TASK, None
    )

    assert prompt.instruction == "Translate to French"
    assert prompt.text == (
        "Read the text below, then follow the instruction.\n\n"
        "Text:\nWater boils at 100 C.\n\n"
        "Instruction: Translate to French"
    )


def test_use_internal_prompt_with_the_stock_default_prompt():
    plan = plan_predictions(REFERENCE_CONFIG, "prompt")

    prompt = builder(USE_INTERNAL_PROMPT="true").build(plan, TASK, None)

    assert prompt.instruction == "Answer the following question\n\nWater boils at 100 C."
    assert prompt.text.startswith("Read the text below, then follow the instruction.\n\n")
    assert prompt.text.endswith(
        "Instruction: Answer the following question\n\nWater boils at 100 C."
    )


# --- PromptBuilder: labels ------------------------------------------------------------


def test_labels_placeholder_renders_comma_separated():
    plan = plan_predictions(CHOICES_WITH_RESPONSE, "prompt")

    prompt = builder(DEFAULT_PROMPT="Pick one of {labels} for: {text}").build(
        plan, TASK, None
    )

    assert prompt.text == "Pick one of A, B, C for: Water boils at 100 C."


def test_choices_with_response_gets_no_label_hint():
    plan = plan_predictions(CHOICES_WITH_RESPONSE, "prompt")

    prompt = builder().build(plan, TASK, None)

    assert prompt.text == "Answer the following question\n\nWater boils at 100 C."


def test_choices_only_config_appends_a_label_hint():
    plan = plan_predictions(CHOICES_ONLY, "prompt")

    prompt = builder().build(plan, TASK, None)

    assert prompt.text == (
        "Answer the following question\n\nWater boils at 100 C.\n\n"
        "Answer with exactly one of these labels: A, B, C"
    )
    assert prompt.instruction == "Answer the following question\n\nWater boils at 100 C."


def test_multiple_choices_only_hint_says_one_or_more():
    plan = plan_predictions(MULTI_CHOICES_ONLY, "prompt")

    prompt = builder().build(plan, TASK, None)

    assert prompt.text.endswith("\n\nAnswer with one or more of these labels: A, B, C")


def test_choices_only_hint_is_not_repeated_when_prompt_lists_labels():
    plan = plan_predictions(CHOICES_ONLY, "prompt")

    prompt = builder(DEFAULT_PROMPT="Classify as {labels}: {text}").build(plan, TASK, None)

    assert prompt.text == "Classify as A, B, C: Water boils at 100 C."


# --- describe -------------------------------------------------------------------------


def test_describe_changes_with_the_remembered_prompt():
    b = builder()

    assert b.describe(None) != b.describe("Summarize")
    assert b.describe("Summarize").endswith("remembered:Summarize")
    assert b.describe(None).endswith("default:Answer the following question\n\n{text}")
