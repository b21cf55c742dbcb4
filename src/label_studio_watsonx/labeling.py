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

import hashlib
import html
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
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
    """Parse a labeling config; raise ``LabelingConfigError`` if it is not one.

    Results are cached by the config's digest, not its text, so a stream of large
    distinct configs cannot fill memory.
    """
    if not isinstance(xml, str) or not xml.strip():
        raise LabelingConfigError("the labeling config is empty")
    return _read_config_cached(_digest(xml), xml)


def _digest(xml: str) -> bytes:
    return hashlib.sha256(xml.encode("utf-8", "surrogatepass")).digest()


_CONFIGS: OrderedDict[bytes, LabelingConfig] = OrderedDict()
_CONFIGS_LOCK = threading.Lock()


def _read_config_cached(digest: bytes, xml: str) -> LabelingConfig:
    with _CONFIGS_LOCK:
        if digest in _CONFIGS:
            _CONFIGS.move_to_end(digest)
            return _CONFIGS[digest]
    config = _parse(xml)
    with _CONFIGS_LOCK:
        _CONFIGS[digest] = config
        while len(_CONFIGS) > 256:
            _CONFIGS.popitem(last=False)
    return config


def _parse(xml: str) -> LabelingConfig:
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


def _label_values(control: Element) -> list[str]:
    """The ``<Choice>``/``<Label>`` values under a control, not under controls inside it.

    What a result holds is the alias when there is one, else the value.
    """
    values: list[str] = []
    waiting = list(control)
    while waiting:
        child = waiting.pop(0)
        if not isinstance(child.tag, str) or child.get("toName"):
            continue
        if child.tag in ("Choice", "Label"):
            value = child.get("alias") or child.get("value")
            if value:
                values.append(value)
        waiting[:0] = list(child)
    return values


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
    holds_labels = element.tag in ("Choices", "Taxonomy") or element.tag.endswith("Labels")
    return ControlTag(
        name=name,
        type=element.tag,
        to_name=tuple(part for part in to_name if part),
        labels=tuple(_label_values(element)) if holds_labels else (),
        multiple=element.get("choice") == "multiple",
    )


def plan_predictions(xml: str, prompt_prefix: str) -> PredictionPlan:
    """Pick the tags a prediction fills; raise ``LabelingConfigError`` if none fit."""
    return _plan_cached(xml, prompt_prefix)


_PLANS: OrderedDict[tuple[bytes, str], PredictionPlan] = OrderedDict()


def _plan_cached(xml: str, prompt_prefix: str) -> PredictionPlan:
    key = (_digest(xml) if isinstance(xml, str) else b"", prompt_prefix)
    with _CONFIGS_LOCK:
        if key in _PLANS:
            _PLANS.move_to_end(key)
            return _PLANS[key]
    plan = _plan(xml, prompt_prefix)
    with _CONFIGS_LOCK:
        _PLANS[key] = plan
        while len(_PLANS) > 256:
            _PLANS.popitem(last=False)
    return plan


def _plan(xml: str, prompt_prefix: str) -> PredictionPlan:
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
        (tag for tag in textareas
         if not tag.name.startswith(prompt_prefix) and about_source(tag)), None
    )  # fmt: skip
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
            speaker = _plain(item.get(tag.name_key))
            text = _plain(item.get(tag.text_key))
            lines.append(f"{speaker}: {text}" if speaker else text)
        else:
            lines.append(_plain(item))
    return "\n".join(lines)


def _plain(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption footer h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p pre section table td th tr ul".split()
)
_HIDDEN_TAGS = ("script", "style", "template", "head")
_TAG_NAME = re.compile(r"/?\s*([a-zA-Z][a-zA-Z0-9-]*)")


def _html_text(markup: str) -> str:
    """What a reader sees of some HTML: text, block elements on their own lines.

    A single forward scan (each character looked at a bounded number of times), since
    Python's own HTML parser takes quadratic time on some broken markup.
    """
    parts: list[str] = []
    position, size = 0, len(markup)
    while position < size:
        opening = markup.find("<", position)
        if opening < 0:
            parts.append(markup[position:])
            break
        parts.append(markup[position:opening])
        if markup.startswith("<!--", opening):
            closing = markup.find("-->", opening + 4)
            position = size if closing < 0 else closing + 3
            continue
        closing = markup.find(">", opening + 1)
        if closing < 0:
            parts.append(markup[opening:])
            break
        name_match = _TAG_NAME.match(markup, opening + 1, closing)
        name = name_match.group(1).lower() if name_match else ""
        position = closing + 1
        if name in _HIDDEN_TAGS and not markup.startswith("/", opening + 1):
            end = markup.lower().find(f"</{name}", position)
            position = size if end < 0 else end
        elif name in _BLOCK_TAGS:
            parts.append("\n")
    text = html.unescape("".join(parts))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)
