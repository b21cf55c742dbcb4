"""label-studio-watsonx: Label Studio's ML backend for watsonx.ai and a local LLM."""

__version__ = "0.1.0"
