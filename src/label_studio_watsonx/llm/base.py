"""The one small interface every LLM provider implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..settings import GenerationParams


@dataclass(frozen=True)
class Completion:
    """One answer and what it cost."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProviderStatus:
    """What ``/health`` says about the provider: ``ready``, ``loading`` or ``error``."""

    state: str
    detail: str = ""


class Provider(ABC):
    """An LLM behind ``complete`` and, where the model can be constrained, ``choose``.

    ``complete`` must be safe to call from several threads at once; a provider whose
    model is not thread-safe serialises calls itself. ``max_concurrency`` tells the
    caller how many calls are worth running at once.
    """

    name: str = "provider"
    max_concurrency: int = 1
    can_choose: bool = False  # True where ``choose`` constrains the model

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model's name as users know it; part of every ``model_version``."""

    @abstractmethod
    def complete(
        self, prompt: str, params: GenerationParams, deadline: float | None = None
    ) -> Completion:
        """Answer ``prompt`` as an instruction (chat template applied where the model has one).

        ``deadline`` (``time.monotonic()``) bounds waiting and retrying, where there is any.
        """

    def choose(
        self,
        prompt: str,
        labels: tuple[str, ...],
        multiple: bool,
        params: GenerationParams,
        deadline: float | None = None,
    ) -> Completion | None:
        """Answer with label(s) from ``labels`` only; None when the model cannot be constrained."""
        return None

    def start(self) -> None:
        """Begin any slow preparation (loading weights) without blocking the caller."""

    def status(self) -> ProviderStatus:
        return ProviderStatus("ready")

    def close(self) -> None:
        """Release the model."""
