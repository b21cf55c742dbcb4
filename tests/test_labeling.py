"""Labeling configs: which tags a prediction fills, what is refused, and input text."""

from __future__ import annotations

import json

import pytest

from label_studio_watsonx.errors import LabelingConfigError, RequestError
from label_studio_watsonx.labeling import (
    ObjectTag,
    input_text,
    plan_predictions,
    read_config,
)

from tests.fixtures import FOLDER as FIXTURES


def fixture_body(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))["body"]


REFERENCE_CONFIG = fixture_body("predict_interactive.json")["label_config"]

CHOICES_CONFIG = """
<View>
  <Text name="review" value="$comment"/>
  <TextArea name="prompt" toName="review"/>
  <TextArea name="response" toName="review"/>
  <Choices name="sentiment" toName="review">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
    <Choice value="Neutral"/>
  </Choices>
</View>
"""

MULTI_CHOICES_CONFIG = """
<View>
  <Text name="review" value="$comment"/>
  <TextArea name="prompt" toName="review"/>
  <Choices name="topics" toName="review" choice="multiple">
    <Choice value="Price"/>
    <Choice alias="Quality"/>
    <Choice value="Delivery"/>
  </Choices>
</View>
"""


def plan(xml: str, prefix: str = "prompt"):
    return plan_predictions(xml, prefix)


def config_error(xml: str, prefix: str = "prompt") -> str:
    with pytest.raises(LabelingConfigError) as caught:
        plan_predictions(xml, prefix)
    return str(caught.value)


# --- the reference config -------------------------------------------------------------


def test_all_fixtures_carry_the_same_reference_config():
    assert fixture_body("predict_batch.json")["label_config"] == REFERENCE_CONFIG
    assert fixture_body("setup.json")["schema"] == REFERENCE_CONFIG


def test_reference_config_plan():
    result = plan(REFERENCE_CONFIG)

    assert result.prompt is not None and result.prompt.name == "prompt"
    assert result.response is not None and result.response.name == "response"
    assert result.prompt.result_type == "textarea"
    assert result.choices is None
    assert result.labels == ()
    assert result.input.name == "context"
    assert result.input.type == "Text"
    assert result.input.data_key == "text"


def test_reference_config_read_lists_all_tags_in_order():
    config = read_config(REFERENCE_CONFIG)

    assert [tag.name for tag in config.objects] == ["context"]
    assert [(tag.name, tag.type) for tag in config.controls] == [
        ("prompt", "TextArea"),
        ("response", "TextArea"),
        ("rating", "Rating"),
    ]
    assert config.controls[2].to_name == ("context",)
    assert config.object_named("context").data_key == "text"
    assert config.object_named("missing") is None


# --- Choices --------------------------------------------------------------------------


def test_single_choices_labels_in_order():
    result = plan(CHOICES_CONFIG)

    assert result.choices is not None
    assert result.choices.name == "sentiment"
    assert result.labels == ("Positive", "Negative", "Neutral")
    assert result.choices.multiple is False
    assert result.response.name == "response"
    assert result.input.data_key == "comment"


def test_multiple_choices_labels_and_flag():
    result = plan(MULTI_CHOICES_CONFIG)

    assert result.choices.name == "topics"
    assert result.labels == ("Price", "Quality", "Delivery")
    assert result.choices.multiple is True
    assert result.response is None
    assert result.prompt.name == "prompt"


def test_choices_without_choice_values_is_refused():
    xml = (
        '<View><Text name="t" value="$text"/>'
        '<Choices name="c" toName="t"></Choices></View>'
    )

    assert 'Choices name="c"> has no <Choice> values' in config_error(xml)


# --- PROMPT_PREFIX ----------------------------------------------------------------------

PREFIX_CONFIG = """
<View>
  <Text name="doc" value="$body"/>
  <TextArea name="answer" toName="doc"/>
  <TextArea name="question_prompt" toName="doc"/>
</View>
"""


def test_prompt_prefix_picks_the_prompt_textarea():
    result = plan(PREFIX_CONFIG, "question")

    assert result.prompt.name == "question_prompt"
    assert result.response.name == "answer"
    assert result.input.data_key == "body"


def test_without_the_matching_prefix_no_prompt_textarea_is_found():
    result = plan(PREFIX_CONFIG, "prompt")

    # Neither TextArea starts with "prompt": the first one holds the answer.
    assert result.prompt is None
    assert result.response.name == "answer"


# --- configs that are refused ------------------------------------------------------------


def test_config_without_textarea_or_choices_is_refused():
    xml = '<View><Text name="t" value="$text"/><Rating name="r" toName="t"/></View>'

    message = config_error(xml)

    assert "no <TextArea> or <Choices> to fill" in message
    assert '<TextArea name="prompt"' in message


def test_no_textarea_message_uses_the_configured_prefix():
    xml = '<View><Text name="t" value="$text"/></View>'

    assert '<TextArea name="question"' in config_error(xml, "question")


def test_image_input_is_refused():
    xml = (
        '<View><Image name="img" value="$image"/>'
        '<TextArea name="prompt" toName="img"/><TextArea name="response" toName="img"/>'
        "</View>"
    )

    message = config_error(xml)

    assert '<Image name="img"> is not supported' in message
    assert "Text, HyperText, Paragraphs" in message


def test_text_with_url_value_type_is_refused():
    xml = (
        '<View><Text name="t" value="$link" valueType="url"/>'
        '<TextArea name="prompt" toName="t"/><TextArea name="response" toName="t"/>'
        "</View>"
    )

    message = config_error(xml)

    assert 'valueType="url"> is not supported' in message
    assert "never fetches URLs" in message


def test_object_without_dollar_value_is_refused():
    xml = (
        '<View><Text name="t" value="literal"/>'
        '<TextArea name="prompt" toName="t"/><TextArea name="response" toName="t"/>'
        "</View>"
    )

    assert 'has no value="$field"' in config_error(xml)


def test_prompt_pointing_to_unknown_object_is_refused():
    xml = (
        '<View><Text name="t" value="$text"/>'
        '<TextArea name="prompt" toName="elsewhere"/><TextArea name="response" toName="t"/>'
        "</View>"
    )

    assert 'no object tag named "elsewhere"' in config_error(xml)


def test_prompt_without_answer_tag_is_refused():
    xml = '<View><Text name="t" value="$text"/><TextArea name="prompt" toName="t"/></View>'

    message = config_error(xml)

    assert 'no <TextArea> besides "prompt"' in message
    assert '<TextArea name="response" toName="t"/>' in message


def test_invalid_xml_is_refused():
    message = config_error("<View><Text name='t' value='$text'></View>")

    assert message.startswith("the labeling config is not valid XML")


def test_entity_bomb_is_refused():
    bomb = (
        '<?xml version="1.0"?>'
        "<!DOCTYPE lolz ["
        '<!ENTITY lol "lol">'
        '<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
        "]>"
        '<View><Text name="t" value="&lol3;"/><TextArea name="prompt" toName="t"/></View>'
    )

    assert "forbidden XML entities" in config_error(bomb)


def test_external_entity_is_refused():
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<View><Text name="t" value="&x;"/></View>'
    )

    assert "forbidden XML entities" in config_error(xxe)


@pytest.mark.parametrize("xml", ["", "   \n  "])
def test_empty_config_is_refused(xml):
    assert config_error(xml) == "the labeling config is empty"


def test_config_errors_are_unprocessable_request_errors():
    with pytest.raises(RequestError) as caught:
        read_config("")

    assert caught.value.status_code == 422


# --- configs that are served without a prompt TextArea -----------------------------------


def test_text_and_choices_only_is_served():
    xml = (
        '<View><Text name="t" value="$text"/>'
        '<Choices name="label" toName="t"><Choice value="Spam"/><Choice value="Ham"/>'
        "</Choices></View>"
    )

    result = plan(xml)

    assert result.prompt is None
    assert result.response is None
    assert result.choices.name == "label"
    assert result.labels == ("Spam", "Ham")
    assert result.input.name == "t"
    assert result.input.data_key == "text"


# --- input_text ---------------------------------------------------------------------------


def test_input_text_for_text():
    tag = ObjectTag(name="t", type="Text", data_key="text")

    assert input_text(tag, {"text": "The sky is blue."}) == "The sky is blue."


def test_input_text_for_reference_task_data():
    task = fixture_body("predict_batch.json")["tasks"][1]

    assert input_text(plan(REFERENCE_CONFIG).input, task["data"]) == (
        "Paris is the capital of France."
    )


def test_input_text_for_hypertext_strips_tags_and_decodes_entities():
    tag = ObjectTag(name="h", type="HyperText", data_key="html")

    html = "<div><p>Hello <b>world</b></p>\n<p>Fish &amp; chips</p></div>"

    # Paragraphs stay on their own lines; inline tags do not split the text.
    assert input_text(tag, {"html": html}) == "Hello world\nFish & chips"


def test_input_text_for_hypertext_leaves_out_scripts_and_styles():
    tag = ObjectTag(name="h", type="HyperText", data_key="html")

    html = "<style>p {color: red}</style><p>Seen</p><script>alert('hidden')</script>"

    assert input_text(tag, {"html": html}) == "Seen"


def test_input_text_for_hypertext_keeps_words_split_by_inline_tags():
    tag = ObjectTag(name="h", type="HyperText", data_key="html")

    assert input_text(tag, {"html": "<p><b>Hel</b>lo world</p>"}) == "Hello world"


def test_input_text_for_paragraphs():
    tag = ObjectTag(name="dialogue", type="Paragraphs", data_key="dialogue")
    data = {
        "dialogue": [
            {"author": "Alice", "text": "Hi there"},
            {"author": "Bob", "text": "Hello"},
            {"text": "no speaker"},
            "plain item",
        ]
    }

    assert input_text(tag, data) == "Alice: Hi there\nBob: Hello\nno speaker\nplain item"


def test_input_text_for_paragraphs_with_custom_keys():
    xml = (
        '<View><Paragraphs name="p" value="$chat" nameKey="who" textKey="said"/>'
        '<TextArea name="prompt" toName="p"/><TextArea name="response" toName="p"/></View>'
    )
    tag = plan(xml).input

    assert (tag.name_key, tag.text_key) == ("who", "said")
    assert input_text(tag, {"chat": [{"who": "A", "said": "one"}]}) == "A: one"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        (3.5, "3.5"),
        (True, "true"),
        ({"a": 1, "b": "é"}, '{"a": 1, "b": "é"}'),
        (["x", 2], '["x", 2]'),
    ],
)
def test_input_text_for_non_string_values_is_json(value, expected):
    tag = ObjectTag(name="t", type="Text", data_key="field")

    assert input_text(tag, {"field": value}) == expected


def test_input_text_missing_field_is_none():
    tag = ObjectTag(name="t", type="Text", data_key="text")

    assert input_text(tag, {"other": "x"}) is None
    assert input_text(tag, {"text": None}) is None
    assert input_text(ObjectTag(name="t", type="Text", data_key=None), {"text": "x"}) is None


def test_input_text_empty_string_is_kept():
    tag = ObjectTag(name="t", type="Text", data_key="text")

    assert input_text(tag, {"text": ""}) == ""
