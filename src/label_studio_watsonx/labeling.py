"""What a Label Studio labeling config asks for.

``read_config`` lists a config's object tags (what is shown: ``Text``,
``Paragraphs``...) and control tags (what is labelled: ``TextArea``, ``Choices``,
``Rating``...). ``plan_predictions`` then picks the tags a prediction fills: the
prompt ``TextArea`` (its name starts with the prompt prefix), the response
``TextArea`` and an optional ``Choices``, all about one readable input object.

Configs are parsed with defusedxml and cached, since Label Studio sends the same
config with every request.
"""

from __future__ import annotations

import html.parser
import json
from dataclasses import dataclass
from functools import lru_cache
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from .errors import LabelingConfigError

READABLE_OBJECTS = ("Text", "HyperText", "Paragraphs")
OBJECT_TAGS = READABLE_OBJECTS + (
    "Image", "Audio", "AudioPlus", "Video", "Table", "TimeSeries", "Pdf",
    "Markdown", "Chat", "List", "Ranker", "Bitmask",
)  # fmt: skip


@dataclass(frozen=True)
class ObjectTag:
    """A tag that shows task data, such as ``<Text name="context" value="$text"/>``."""

    name: str
    type: str
    data_key: str | None
    value_type: str | None = None
    name_key: str = "author"
    text_key: str = "text"


@dataclass(frozen=True)
class ControlTag:
    """A tag an annotator fills, such as ``<TextArea name="response" .../>``."""

    name: str
    type: str
    to_name: tuple[str, ...]
    labels: tuple[str, ...] = ()
    multiple: bool = False

    @property
    def result_type(self) -> str:
        """The ``type`` Label Studio writes in results of this tag."""
        return self.type.lower()


@dataclass(frozen=True)
class LabelingConfig:
    """All object and control tags of one labeling config, in document order."""

    objects: tuple[ObjectTag, ...]
    controls: tuple[ControlTag, ...]

    def object_named(self, name: str) -> ObjectTag | None:
        return next((tag for tag in self.objects if tag.name == name), None)


@dataclass(frozen=True)
class PredictionPlan:
    """The tags one prediction fills, and the object whose data it reads."""

    input: ObjectTag
    prompt: ControlTag | None
    response: ControlTag | None
    choices: ControlTag | None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.choices.labels if self.choices else ()


def read_config(xml: str) -> LabelingConfig:
    """Parse a labeling config; raise ``LabelingConfigError`` if it is not one."""
    return _read_config_cached(xml)


@lru_cache(maxsize=256)
def _read_config_cached(xml: str) -> LabelingConfig:
    if not isinstance(xml, str) or not xml.strip():
        raise LabelingConfigError("the labeling config is empty")
    try:
        root = safe_xml.fromstring(xml)
    except DefusedXmlException:
        raise LabelingConfigError("the labeling config uses forbidden XML entities") from None
    except Exception as error:  # ParseError and the expat errors behind it
        raise LabelingConfigError(f"the labeling config is not valid XML: {error}") from None

    objects: list[ObjectTag] = []
    controls: list[ControlTag] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = element.get("name")
        if not name:
            continue
        if element.get("toName"):
            controls.append(_control(element, name))
        elif element.tag in OBJECT_TAGS:
            objects.append(_object(element, name))
    return LabelingConfig(objects=tuple(objects), controls=tuple(controls))


def _object(element: Element, name: str) -> ObjectTag:
    value = element.get("value", "")
    data_key = value[1:] if value.startswith("$") and len(value) > 1 else None
    return ObjectTag(
        name=name,
        type=element.tag,
        data_key=data_key,
        value_type=element.get("valueType"),
        name_key=element.get("nameKey", "author"),
        text_key=element.get("textKey", "text"),
    )


def _control(element: Element, name: str) -> ControlTag:
    to_name = tuple(part.strip() for part in element.get("toName", "").split(","))
    labels = tuple(
        child.get("value") or child.get("alias") or ""
        for child in element.iter()
        if child is not element and child.tag in ("Choice", "Label")
    )
    return ControlTag(
        name=name,
        type=element.tag,
        to_name=tuple(part for part in to_name if part),
        labels=tuple(label for label in labels if label),
        multiple=element.get("choice") == "multiple",
    )


def plan_predictions(xml: str, prompt_prefix: str) -> PredictionPlan:
    """Pick the tags a prediction fills; raise ``LabelingConfigError`` if none fit."""
    return _plan_cached(xml, prompt_prefix)


@lru_cache(maxsize=256)
def _plan_cached(xml: str, prompt_prefix: str) -> PredictionPlan:
    config = read_config(xml)
    textareas = [tag for tag in config.controls if tag.type == "TextArea"]
    prompt = next((tag for tag in textareas if tag.name.startswith(prompt_prefix)), None)

    if prompt is not None:
        target = prompt.to_name[0] if prompt.to_name else ""
    else:
        fillable = [tag for tag in config.controls if tag.type in ("TextArea", "Choices")]
        if not fillable:
            raise LabelingConfigError(
                "the labeling config has no <TextArea> or <Choices> to fill; add a "
                f'<TextArea name="{prompt_prefix}" toName="..."/> for the prompt and '
                'another <TextArea name="response" toName="..."/> for the answer'
            )
        target = fillable[0].to_name[0] if fillable[0].to_name else ""

    source = config.object_named(target)
    if source is None:
        raise LabelingConfigError(
            f'the labeling config has no object tag named "{target}" for the prompt '
            "to read"
        )
    _check_readable(source)

    def about_source(tag: ControlTag) -> bool:
        return target in tag.to_name

    response = next(
        (tag for tag in textareas if tag is not prompt and about_source(tag)), None
    )
    choices = next(
        (tag for tag in config.controls if tag.type == "Choices" and about_source(tag)),
        None,
    )
    if response is None and choices is None:
        raise LabelingConfigError(
            f'the labeling config has no <TextArea> besides "{prompt.name if prompt else ""}"'
            f' and no <Choices> about "{target}" to hold the answer; add '
            f'<TextArea name="response" toName="{target}"/>'
        )
    if choices is not None and not choices.labels:
        raise LabelingConfigError(f'<Choices name="{choices.name}"> has no <Choice> values')
    return PredictionPlan(input=source, prompt=prompt, response=response, choices=choices)


def _check_readable(tag: ObjectTag) -> None:
    if tag.type not in READABLE_OBJECTS:
        raise LabelingConfigError(
            f'<{tag.type} name="{tag.name}"> is not supported as the prompt\'s input: '
            f"this service reads {', '.join(READABLE_OBJECTS)}"
        )
    if tag.value_type and tag.value_type.lower() == "url":
        raise LabelingConfigError(
            f'<{tag.type} name="{tag.name}" valueType="url"> is not supported: the '
            "service never fetches URLs from task data; put the text itself in the task"
        )
    if tag.data_key is None:
        raise LabelingConfigError(
            f'<{tag.type} name="{tag.name}"> has no value="$field" naming the task field '
            "to read"
        )


def input_text(tag: ObjectTag, data: dict) -> str | None:
    """The text a task shows in ``tag``, or None when the task lacks the field."""
    if tag.data_key is None or tag.data_key not in data:
        return None
    value = data[tag.data_key]
    if value is None:
        return None
    if tag.type == "Paragraphs":
        return _paragraphs_text(value, tag)
    if tag.type == "HyperText" and isinstance(value, str):
        return _html_text(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _paragraphs_text(value: object, tag: ObjectTag) -> str:
    if not isinstance(value, list):
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    lines = []
    for item in value:
        if isinstance(item, dict):
            speaker = item.get(tag.name_key)
            text = item.get(tag.text_key, "")
            lines.append(f"{speaker}: {text}" if speaker else str(text))
        else:
            lines.append(str(item))
    return "\n".join(lines)


_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption footer h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table td th tr ul".split()
)
_HIDDEN_TAGS = frozenset({"script", "style", "template", "head"})


class _TextOnly(html.parser.HTMLParser):
    """Collects what a reader sees: text, with block elements on their own lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def _html_text(markup: str) -> str:
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
