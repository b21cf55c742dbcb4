"""Tasks in, Label Studio predictions out.

``Predictor.predict`` builds one prompt per task, asks the provider (several tasks
at once where the provider allows it), and turns each answer into a prediction
that fills the config's response ``TextArea`` and ``Choices`` and echoes the
prompt. A task that cannot be answered gets an empty list in its place, which
Label Studio reads as "no prediction for this task", and a logged reason; the other
tasks keep theirs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import metrics
from .errors import LabelStudioWatsonxError, ProviderNotReady, RequestError
from .cache import ResponseCache, cache_key
from .labeling import ControlTag, PredictionPlan, plan_predictions
from .llm import Completion, Provider
from .prompts import Prompt, PromptBuilder
from .settings import GenerationParams, Settings
from .state import ProjectPrompts

log = logging.getLogger(__name__)
_UNKNOWN = object()


def project_id_of(project: object) -> int | None:
    """The numeric id in Label Studio's ``"<id>.<created unix time>"`` project key."""
    if isinstance(project, bool):
        return None
    if isinstance(project, str):
        head = project.split(".", 1)[0]
        project = int(head) if head.isascii() and head.isdigit() and len(head) <= 19 else None
    if isinstance(project, int) and 0 <= project < 2**63:
        return project
    return None


def typed_prompt(context: object, plan: PredictionPlan) -> str | None:
    """The prompt an annotator typed, from ``params.context``; None when there is none."""
    if plan.prompt is None or not isinstance(context, Mapping):
        return None
    results = context.get("result")
    if not isinstance(results, list):
        return None
    for item in results:
        if not isinstance(item, Mapping) or item.get("from_name") != plan.prompt.name:
            continue
        value = item.get("value")
        texts = value.get("text") if isinstance(value, Mapping) else None
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(texts, list):
            joined = "\n".join(text for text in texts if isinstance(text, str)).strip()
            if joined:
                return joined
    return None


def match_labels(answer: str, labels: Sequence[str], multiple: bool) -> list[str]:
    """The allowed labels an answer names, in label order; never an invented one.

    An answer that is exactly a label wins; otherwise labels found as whole words,
    the earliest (then the longest) first when only one may be chosen.
    """
    wanted = answer.strip().strip(".!\"'`*").casefold()
    exact = [label for label in labels if label.casefold() == wanted]
    if exact:
        return exact[:1]
    found: list[tuple[int, int, str]] = []
    for label in labels:
        pattern = r"(?<!\w)" + re.escape(label.casefold()) + r"(?!\w)"
        hit = re.search(pattern, answer.casefold())
        if hit:
            found.append((hit.start(), -len(label), label))
    if not found:
        return []
    if multiple:
        return [label for label in labels if any(label == item[2] for item in found)]
    return [min(found)[2]]


@dataclass
class TaskOutcome:
    """One task's prediction, or the reason it has none."""

    task_id: object
    prediction: dict | None = None
    reason: str | None = None
    completions: list[Completion] = field(default_factory=list)
    cached: int = 0


@dataclass
class PredictOutcome:
    """A whole ``/predict`` answer: one outcome per task, in task order."""

    project_id: int | None
    model_version: str
    mode: str
    tasks: list[TaskOutcome]

    def results(self) -> list[dict | list]:
        return [task.prediction if task.prediction else [] for task in self.tasks]


class Predictor:
    """Turns Label Studio tasks into predictions with one provider."""

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        prompts: ProjectPrompts,
        cache: ResponseCache | None = None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.project_prompts = prompts
        self.cache = cache
        self.builder = PromptBuilder(settings)

    def plan(self, label_config: str) -> PredictionPlan:
        return plan_predictions(label_config, self.settings.prompt_prefix)

    def params_for(self, project_id: int | None) -> GenerationParams:
        """The settings' generation parameters with the project's overrides."""
        overrides = self.project_prompts.params(project_id)
        return self.settings.generation.with_overrides(overrides) if overrides else self.settings.generation

    def set_project_params(self, project_id: int | None, extra_params: Mapping | None) -> None:
        """Keep a project's ``extra_params``; raise ``RequestError`` for unusable ones."""
        overrides = dict(extra_params or {})
        try:
            self.settings.generation.with_overrides(overrides)
        except ValueError as error:
            raise RequestError(str(error)) from None
        self.project_prompts.set_params(project_id, overrides)

    def model_version(
        self,
        project_id: int | None,
        params: GenerationParams | None = None,
        default_prompt: str | None = None,
        remembered: object = _UNKNOWN,
    ) -> str:
        """Names the model, and changes whenever the model or the automatic prompt does.

        ``remembered`` is the project's remembered prompt when the caller has read it.
        """
        if default_prompt:
            remembered = None
        elif remembered is _UNKNOWN:
            remembered = self.project_prompts.get(project_id)
        recipe = "\x1e".join(
            [
                self.provider.name,
                self.provider.model_id,
                self.builder.describe(remembered, default_prompt),
                repr(sorted((params or self.params_for(project_id)).as_dict().items())),
            ]
        )
        digest = hashlib.sha256(recipe.encode("utf-8")).hexdigest()[:8]
        return f"{self.provider.model_id}@{digest}"

    def predict(
        self,
        tasks: Sequence[Mapping],
        label_config: str,
        project: object = None,
        context: object = None,
        default_prompt: str | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
    ) -> PredictOutcome:
        """Predict every task; raises ``LabelingConfigError`` for a config it cannot serve.

        ``default_prompt`` replaces both the remembered prompt and ``DEFAULT_PROMPT``;
        ``concurrency`` caps the provider's own.
        """
        plan = self.plan(label_config)
        project_id = project_id_of(project)
        typed = typed_prompt(context, plan)
        if typed is not None:
            self.project_prompts.remember(project_id, typed)
        remembered = typed if typed is not None else self.project_prompts.get(project_id)
        instruction = None if default_prompt and typed is None else remembered
        params = self.params_for(project_id)
        version = self.model_version(project_id, params, default_prompt, remembered)
        mode = "interactive" if typed is not None else "automatic"
        deadline = time.monotonic() + (timeout or self.settings.predict_timeout)

        def one(task: Mapping) -> TaskOutcome:
            if time.monotonic() > deadline:
                metrics.PREDICTIONS.labels("timeout").inc()
                return TaskOutcome(task.get("id"), reason="PREDICT_TIMEOUT passed before its turn")
            return self._predict_task(
                task, plan, instruction, params, version, project_id, deadline, default_prompt
            )

        workers = min(concurrency or self.provider.max_concurrency, self.provider.max_concurrency,
                      len(tasks))  # fmt: skip
        if workers <= 1:
            outcomes = [one(task) for task in tasks]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict") as pool:
                outcomes = list(pool.map(one, tasks))
        return PredictOutcome(project_id, version, mode, outcomes)

    def _predict_task(
        self,
        task: Mapping,
        plan: PredictionPlan,
        instruction: str | None,
        params: GenerationParams,
        version: str,
        project_id: int | None,
        deadline: float,
        default_prompt: str | None = None,
    ) -> TaskOutcome:
        task_id = task.get("id")
        outcome = TaskOutcome(task_id)
        try:
            prompt = self.builder.build(plan, task, instruction, default_prompt)
            answer, labels = self._answer(plan, prompt, params, outcome, project_id, deadline)
        except ProviderNotReady:
            raise
        except LabelStudioWatsonxError as error:
            outcome.reason = str(error)
            metrics.PREDICTIONS.labels("failed").inc()
            log.warning("no prediction project=%s task=%s: %s", project_id, task_id, error)
            return outcome

        if not answer and not labels:
            outcome.reason = f"task {task_id}: the model gave an empty answer"
            metrics.PREDICTIONS.labels("empty").inc()
            log.warning("no prediction project=%s task=%s: empty answer", project_id, task_id)
            return outcome

        outcome.prediction = {
            "result": self._result(plan, prompt, answer, labels),
            "model_version": version,
        }
        metrics.PREDICTIONS.labels("ok").inc()
        return outcome

    def _answer(
        self,
        plan: PredictionPlan,
        prompt: Prompt,
        params: GenerationParams,
        outcome: TaskOutcome,
        project_id: int | None,
        deadline: float,
    ) -> tuple[str, list[str]]:
        """The free answer and the chosen labels: one LLM call, two where the answer
        names no label and the provider can be held to the labels."""
        choices = plan.choices
        if plan.response is None and choices is not None and self.provider.can_choose:
            constrained = self._call(project_id, outcome, self.provider.choose, prompt.text,
                                     choices.labels, choices.multiple, params, deadline)  # fmt: skip
            return "", constrained.labels

        completion = self._call(
            project_id, outcome, self.provider.complete, prompt.text, params, deadline
        )
        if choices is None:
            return completion.text, []
        labels = match_labels(completion.text, choices.labels, choices.multiple)
        if not labels and plan.response is not None and self.provider.can_choose:
            constrained = self._call(project_id, outcome, self.provider.choose, prompt.text,
                                     choices.labels, choices.multiple, params, deadline)  # fmt: skip
            labels = constrained.labels
        return (completion.text if plan.response is not None else ""), labels

    def _call(self, project_id: int | None, outcome: TaskOutcome, method, *args) -> Completion:
        provider, model = self.provider.name, self.provider.model_id
        key = None
        if self.cache is not None:
            # Everything but the deadline (the last argument) decides the answer.
            key = cache_key(provider, model, method.__name__, *args[:-2],
                            args[-2].as_dict())  # fmt: skip
            cached = self.cache.get(key)
            metrics.CACHE.labels("hit" if cached else "miss").inc()
            if cached is not None:
                outcome.cached += 1
                return cached
        started = time.perf_counter()
        try:
            completion = method(*args)
        except Exception:
            metrics.LLM_CALLS.labels(provider, model, "error").inc()
            raise
        metrics.LLM_SECONDS.labels(provider, model).observe(time.perf_counter() - started)
        if completion is None:
            return None
        metrics.LLM_CALLS.labels(provider, model, "ok").inc()
        if key is not None:
            self.cache.put(key, completion)
        project = _project_label(project_id)
        metrics.TOKENS.labels(provider, model, project, "input").inc(completion.input_tokens)
        metrics.TOKENS.labels(provider, model, project, "output").inc(completion.output_tokens)
        outcome.completions.append(completion)
        return completion

    @staticmethod
    def _result(
        plan: PredictionPlan, prompt: Prompt, answer: str, labels: list[str]
    ) -> list[dict]:
        to_name = plan.input.name
        result: list[dict] = []
        if plan.response is not None and answer:
            result.append(_region(plan.response, to_name, {"text": [answer]}))
        if plan.choices is not None and labels:
            result.append(_region(plan.choices, to_name, {"choices": labels}))
        if plan.prompt is not None:
            result.append(_region(plan.prompt, to_name, {"text": [prompt.instruction]}))
        return result


_LABELLED_PROJECTS: set[int] = set()
MAX_PROJECT_LABELS = 500


def _project_label(project_id: int | None) -> str:
    """The project as a metrics label; past 500 projects, "other" keeps /metrics small."""
    if project_id is None:
        return "none"
    if project_id in _LABELLED_PROJECTS or len(_LABELLED_PROJECTS) < MAX_PROJECT_LABELS:
        _LABELLED_PROJECTS.add(project_id)
        return str(project_id)
    return "other"


def _region(tag: ControlTag, to_name: str, value: dict) -> dict:
    return {"from_name": tag.name, "to_name": to_name, "type": tag.result_type, "value": value}
