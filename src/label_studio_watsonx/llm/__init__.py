"""LLM providers behind one interface; ``create_provider`` picks one from settings."""

from __future__ import annotations

from ..settings import Settings
from .base import Completion, Provider, ProviderStatus

__all__ = ["Completion", "Provider", "ProviderStatus", "create_provider"]


def create_provider(settings: Settings) -> Provider:
    """The provider ``settings.llm_provider`` names; heavy SDKs are imported only here."""
    if settings.llm_provider == "echo":
        from .echo import EchoProvider

        return EchoProvider()
    if settings.llm_provider == "watsonx":
        from .watsonx import WatsonxProvider

        return WatsonxProvider(settings)
    from .local import LocalProvider

    return LocalProvider(
        model_path=settings.local_model_path,
        context_size=settings.local_context_size,
        threads=settings.local_threads,
    )
