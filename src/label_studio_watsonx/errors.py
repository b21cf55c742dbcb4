"""Every error a user can cause, in one tree.

Each exception carries a message that names the input at fault and, where it helps,
what to do about it. The web app turns ``RequestError`` subclasses into 4xx answers
and ``ServiceError`` subclasses into clear 5xx or health details.
"""

from __future__ import annotations


class LabelStudioWatsonxError(Exception):
    """Base class for every error this package raises on purpose."""


class SettingsError(LabelStudioWatsonxError):
    """An environment variable holds a value the service cannot use."""

    def __init__(self, variable: str, value: str, accepts: str) -> None:
        self.variable = variable
        self.value = value
        self.accepts = accepts
        shown = value if len(value) <= 60 else value[:57] + "..."
        super().__init__(f"{variable}={shown!r} is not valid: {variable} accepts {accepts}")


class RequestError(LabelStudioWatsonxError):
    """A client sent something the service cannot act on (answered with a 4xx)."""

    status_code = 400


class LabelingConfigError(RequestError):
    """A labeling config the service cannot serve, with the reason."""

    status_code = 422


class PromptError(LabelStudioWatsonxError):
    """A prompt could not be built for one task (the task gets no prediction)."""


class MissingFieldsError(PromptError):
    """A prompt template names task fields that the task's data lacks."""

    def __init__(self, fields: list[str], task_id: object) -> None:
        self.fields = fields
        self.task_id = task_id
        names = ", ".join(fields)
        super().__init__(
            f"task {task_id}: the prompt needs data field(s) {names}, "
            "which the task does not have"
        )


class ProviderError(LabelStudioWatsonxError):
    """The LLM provider failed: unreachable, refused the request or misconfigured."""


class ProviderNotReady(ProviderError):
    """The provider cannot answer yet (for example the local model failed to load)."""
