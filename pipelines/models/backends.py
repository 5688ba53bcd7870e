"""Generation backends: one interface for every way a model answers, chosen in one place.

    backend = open_backend("run-1@1000", workspace)            # any model reference
    for i, completion in backend.generate(prompts, GenerationSettings()): ...
    if backend.supports_loglik: backend.score_choices(questions, prompts)
    backend.describe()   # BackendInfo(kind='local', label='run-1@1000', device='cpu', local=True)

The evaluation engine, the local OpenAI-compatible server and the workbench's free-form
prompt all open their model here, so a new engine is usable everywhere at once. Today:

  ``local``     ``pipelines.models.generation.LocalGenerator``: a Hugging Face model in this process
                (base model, adapter on top), batched; log-likelihoods via ``pipelines.models.loglik``
  ``endpoint``  ``pipelines.models.generation.EndpointGenerator``: an OpenAI-compatible chat API
                (``openai:MODEL[@URL]``), N requests in flight; no log-likelihoods
  ``endpoint-completions``  ``pipelines.models.completions_endpoint.CompletionsEndpoint``: a serving
                engine's ``/v1/completions`` (``openai-completions:MODEL[@URL]``): raw-prompt generation
                and log-likelihoods by echo + logprobs, N questions in flight
  ``vision``    ``pipelines.models.vision.VisionGenerator``: an image-text-to-text model in this
                process; ``generate_reports(images, prompt, settings)``. Open it with
                ``open_vision_backend``, which refuses a text model; text prompts are refused
                (``check_text_model`` says so before anything loads)

Adding a backend (e.g. vLLM for GPU evaluation at scale):
1. write a class with the ``Backend`` methods below; ``generate`` yields ``(index, Completion)``
   in any order, as each finishes; ``score_choices`` raises a ``UserError`` if it cannot score
   (``supports_loglik = False``); ``describe`` says what it is;
2. write an opener ``(ModelRef, BackendSettings) -> backend`` and register both in ``BACKENDS``
   under the ``ModelRef.kind`` it serves; a new reference syntax (``vllm:DIR`` …) is a branch in
   ``pipelines.models.references.resolve_model`` that returns that kind; a setting it needs (tensor
   parallel size …) is a ``BackendSettings`` field;
3. add its cases to ``tests/pipelines/test_backends.py`` (it satisfies ``Backend``, is chosen
   from its reference). Callers need no change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, runtime_checkable

from pipelines.core.errors import UserError
from pipelines.core.workspace import Workspace
from pipelines.models.completions_endpoint import CompletionsEndpoint
from pipelines.models.generation import (
    BackendInfo,
    Completion,
    EndpointGenerator,
    GenerationSettings,
    LocalGenerator,
    Prompt,
    loglik_refused,
)
from pipelines.models.modality import VISION, text_model_refused, vision_model_refused
from pipelines.models.references import ModelRef, load_model, resolve_model
from pipelines.models.vision import VisionGenerator
from pipelines.tasks.igakuqa import Question

__all__ = ["Backend", "BackendInfo", "BackendSettings", "Completion", "GenerationSettings", "Prompt",
           "BACKENDS", "backend_type", "check_loglik", "check_text_model", "open_backend", "open_vision_backend"]


@runtime_checkable
class Backend(Protocol):
    supports_loglik: bool

    def generate(self, prompts: list[Prompt], settings: GenerationSettings, *,
                 on_tokens: Callable[[int], None] | None = None) -> Iterator[tuple[int, Completion]]:
        """Answer every prompt; yield (its index, its Completion) as each finishes. ``on_tokens(n)``
        reports tokens as they are generated (progress between finished answers); the raw
        text, before stop strings cut it, is ``Completion.info["raw"]``."""
        ...

    def score_choices(self, questions: list[Question], prompts: list[Prompt]
                      ) -> list[tuple[dict[str, float], dict[str, float]]]:
        """Per question: (sum log-prob per choice letter, log-prob per character per letter)."""
        ...

    def describe(self) -> BackendInfo:
        ...


@dataclass(frozen=True)
class BackendSettings:
    """How a backend runs (not what it generates: that is ``GenerationSettings``)."""
    batch_size: int = 16                # local: prompts per batch (also for log-likelihoods)
    max_batch_tokens: int = 16384       # local: rows × (prompt + new tokens) per batch, bounds memory
    device: str | None = None           # local: cpu | cuda | cuda:1 …; None = a GPU if there is one
    concurrency: int = 4                # endpoint: requests in flight
    timeout: float = 120.0              # endpoint: seconds per request
    allow_remote_pii: bool = False      # endpoint: send prompts with personal data to a host off this machine
    trust_remote_code: bool = False     # vision: may run Python shipped with the model (the caller records it)


def _open_local(ref: ModelRef, settings: BackendSettings) -> LocalGenerator:
    model, tokenizer = load_model(ref, device=settings.device)
    return LocalGenerator(model, tokenizer, batch_size=settings.batch_size,
                          max_batch_tokens=settings.max_batch_tokens, label=ref.label)


def _endpoint_opener(cls: type[EndpointGenerator]) -> Callable[[ModelRef, BackendSettings], EndpointGenerator]:
    def open_endpoint(ref: ModelRef, settings: BackendSettings) -> EndpointGenerator:
        return cls(ref.base_url, ref.model_name, api_key_env=ref.api_key_env, concurrency=settings.concurrency,
                   timeout=settings.timeout, is_local=ref.is_local_endpoint, allow_remote_pii=settings.allow_remote_pii)
    return open_endpoint


def _open_vision(ref: ModelRef, settings: BackendSettings) -> VisionGenerator:
    return VisionGenerator.load(ref, device=settings.device, trust_remote_code=settings.trust_remote_code,
                                batch_size=settings.batch_size, max_batch_tokens=settings.max_batch_tokens)


# ModelRef.kind → (the implementation, how to open it from a reference)
BACKENDS: dict[str, tuple[type, Callable[[ModelRef, BackendSettings], Backend]]] = {
    "local": (LocalGenerator, _open_local),
    "endpoint": (EndpointGenerator, _endpoint_opener(EndpointGenerator)),
    "endpoint-completions": (CompletionsEndpoint, _endpoint_opener(CompletionsEndpoint)),
    VISION: (VisionGenerator, _open_vision),
}


def backend_key(ref: ModelRef) -> str:
    """Which ``BACKENDS`` entry serves ``ref``: its kind, and for an endpoint the API it uses."""
    return f"{ref.kind}-{ref.api}" if ref.kind == "endpoint" and ref.api else ref.kind


def backend_type(ref: ModelRef) -> type:
    """The class that will serve ``ref``, known before anything is loaded."""
    if backend_key(ref) not in BACKENDS:
        raise UserError(f"No generation backend for {ref.spec!r} (kind {ref.kind!r}).",
                        f"Use a reference of kind {', '.join(BACKENDS)} (see pipelines.models.references).",
                        code="backend.none", params={"spec": ref.spec, "kind": ref.kind, "known": ", ".join(BACKENDS)})
    return BACKENDS[backend_key(ref)][0]


def check_text_model(ref: ModelRef) -> None:
    """Refuse a vision model early, before it loads, where text prompts will be sent."""
    if ref.kind == VISION:
        raise vision_model_refused(ref.label)


def check_loglik(ref: ModelRef) -> None:
    """Refuse log-likelihood scoring early, before a model loads, when the backend cannot do it."""
    check_text_model(ref)
    if not backend_type(ref).supports_loglik:
        raise loglik_refused(ref.label)


def open_backend(ref_or_spec: ModelRef | str, workspace: Workspace | None = None, *, adapter: str | None = None,
                 **settings) -> Backend:
    """The backend for a model reference (a string as every CLI takes it, or a resolved ``ModelRef``).

    ``adapter`` applies to a string reference (a ``ModelRef`` carries its own); ``settings`` are
    ``BackendSettings`` fields, and each backend reads those it uses.
    """
    ref = ref_or_spec if isinstance(ref_or_spec, ModelRef) else resolve_model(ref_or_spec, adapter, workspace)
    backend_type(ref)
    return BACKENDS[backend_key(ref)][1](ref, BackendSettings(**settings))


def open_vision_backend(ref_or_spec: ModelRef | str, workspace: Workspace | None = None, *,
                        adapter: str | None = None, **settings) -> VisionGenerator:
    """``open_backend`` for callers that send images: a text model is refused before it loads."""
    ref = ref_or_spec if isinstance(ref_or_spec, ModelRef) else resolve_model(ref_or_spec, adapter, workspace)
    if ref.kind != VISION:
        raise text_model_refused(ref.label)
    return open_backend(ref, **settings)
