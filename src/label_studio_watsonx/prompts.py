"""Prompt text from a template, a task's data and the config's labels.

Two kinds of text meet here:

- templates written by whoever runs the service (``DEFAULT_PROMPT``,
  ``PROMPT_TEMPLATE``): ``{name}`` is filled from the task, ``{{`` and ``}}`` stand
  for literal braces;
- instructions typed by annotators: data, never parsed, braces kept as typed.

A typed (or remembered) instruction is always placed in ``PROMPT_TEMPLATE`` beside
the task's text, since it speaks about the task. ``DEFAULT_PROMPT`` is used as
written, or also placed in the template when ``USE_INTERNAL_PROMPT`` is on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import MissingFieldsError
from .labeling import PredictionPlan, input_text
from .settings import Settings

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}\n]+)\}")


@dataclass(frozen=True)
class Prompt:
    """What the model is asked (``text``) and what the prompt field shows."""

    text: str
    instruction: str


def placeholders(template: str) -> list[str]:
    """The names a template fills, in order of first use."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name is not None and name.strip() not in names:
            names.append(name.strip())
    return names


def render(template: str, values: Mapping[str, str], task_id: object = None) -> str:
    """Fill ``{name}`` placeholders; raise ``MissingFieldsError`` naming the absent ones.

    Values are inserted as they are: braces inside a value are never read again.
    """
    missing = [name for name in placeholders(template) if name not in values]
    if missing:
        raise MissingFieldsError(missing, task_id)

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values[match.group(1).strip()]

    return _PLACEHOLDER.sub(fill, template)


class PromptBuilder:
    """Builds the prompt for one task from the settings' templates."""

    def __init__(self, settings: Settings) -> None:
        self.template = settings.prompt_template
        self.default_prompt = settings.default_prompt
        self.use_internal = settings.use_internal_prompt

    def build(
        self,
        plan: PredictionPlan,
        task: Mapping,
        instruction: str | None,
        default_prompt: str | None = None,
    ) -> Prompt:
        """The prompt for ``task``: ``instruction`` if an annotator gave one, else the
        default prompt (``default_prompt`` when given, else ``DEFAULT_PROMPT``)."""
        task_id = task.get("id")
        data = task.get("data")
        values = _task_values(data if isinstance(data, Mapping) else {})
        text = input_text(plan.input, data) if isinstance(data, Mapping) else None
        if plan.labels:
            values["labels"] = ", ".join(plan.labels)

        if text is not None and plan.input.data_key:
            values[plan.input.data_key] = text  # the readable text, not raw markup
        if instruction is None:
            if text is not None:
                values.setdefault("text", text)
            instruction = render(default_prompt or self.default_prompt, values, task_id)
            if not self.use_internal:
                return Prompt(text=self._with_label_hint(plan, instruction), instruction=instruction)

        if text is None:
            if "text" in placeholders(self.template):
                raise MissingFieldsError([plan.input.data_key or plan.input.name], task_id)
        else:
            values["text"] = text
        values["prompt"] = instruction
        wrapped = render(self.template, values, task_id)
        return Prompt(text=self._with_label_hint(plan, wrapped), instruction=instruction)

    def describe(self, remembered: str | None, default_prompt: str | None = None) -> str:
        """A stable description of how automatic prompts are made, for versioning."""
        parts = [self.template, str(self.use_internal)]
        if default_prompt:
            parts.append("given:" + default_prompt)
        elif remembered:
            parts.append("remembered:" + remembered)
        else:
            parts.append("default:" + self.default_prompt)
        return "\x1f".join(parts)

    @staticmethod
    def _with_label_hint(plan: PredictionPlan, text: str) -> str:
        """Tell the model the allowed labels when only a label can hold the answer."""
        if plan.choices is None or plan.response is not None:
            return text
        labels = ", ".join(plan.labels)
        if labels in text:
            return text
        how_many = "one or more" if plan.choices.multiple else "exactly one"
        return f"{text}\n\nAnswer with {how_many} of these labels: {labels}"


def _task_values(data: Mapping) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, str):
            values[key] = value
        elif value is not None:
            values[key] = json.dumps(value, ensure_ascii=False)
    return values
