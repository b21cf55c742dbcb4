"""A provider that answers instantly with the prompt's last line.

It calls no model. It exists to check the service's wiring and to measure its own
overhead (``LLM_PROVIDER=echo``); its answers carry no meaning.
"""

from __future__ import annotations

from ..settings import GenerationParams
from .base import Completion, Provider


class EchoProvider(Provider):
    name = "echo"
    max_concurrency = 8

    @property
    def model_id(self) -> str:
        return "echo"

    def complete(
        self, prompt: str, params: GenerationParams, deadline: float | None = None
    ) -> Completion:
        lines = [line for line in prompt.splitlines() if line.strip()]
        words = (lines[-1] if lines else "").split()[: params.max_new_tokens]
        return Completion(
            text=" ".join(words),
            input_tokens=len(prompt.split()),
            output_tokens=len(words),
            stop_reason="eos_token",
        )
