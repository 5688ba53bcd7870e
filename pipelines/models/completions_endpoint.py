"""Log-likelihoods through a serving engine: any server that answers the legacy ``/v1/completions``
API with prompt log-probs (vLLM, llama.cpp's server, TGI, SGLang, ``jmedlora serve``).

    openai-completions:MODEL[@BASE_URL]     # a model reference (pipelines.models.references)

Scoring a question is one request with ``echo`` and ``logprobs``, as lm-evaluation-harness's
``local-completions`` model does: the prompts are the question's context alone, then the
context followed by each choice; the server returns the log-prob of every prompt token, and a
choice's score is the sum over the tokens that follow the context's own tokens: exactly
``pipelines.models.loglik.encode_pair`` (trailing whitespace of the context moves into the
continuation; the continuation is the whole string's tokens after the context's). Sending the
context alone costs one short prompt per question and makes the split the server's own
tokenization, with no tokenizer on this machine and no reliance on character offsets (which
drift where a token is part of a Japanese character). ``max_tokens`` is 1, not 0, because that
is what every server tested with lm-evaluation-harness accepts; the one generated token is dropped
(the harness's ``[ctxlen:-1]``).

Generation sends a text prompt to ``/v1/completions`` as it is (the local engine's raw prompt,
so a base model served by vLLM answers the same prompt as in this process) and chat messages to
``/v1/chat/completions`` (the server applies its chat template). ``N`` questions are in flight at
once (``concurrency``); the OpenAI client retries rate limits and server errors; text bound for a
host that is not this machine passes the personal-data guard first (``EndpointGenerator``).
A server that does not return prompt log-probs (OpenAI's own API today: chat models only, no
``echo`` with ``logprobs``) is refused with a message saying so.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from pipelines.core.errors import UserError
from pipelines.models.generation import (
    Completion,
    EndpointGenerator,
    GenerationSettings,
    Prompt,
    answered,
    endpoint_errors,
)
from pipelines.tasks.igakuqa import Question

TARGET_DELIMITER = " "      # as pipelines.models.loglik.LoglikConfig (the harness's default)


def split_pair(context: str, continuation: str) -> tuple[str, str]:
    """(context, continuation) with the context's trailing whitespace moved into the continuation,
    as ``pipelines.models.loglik.encode_pair`` does before encoding."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def no_prompt_logprobs(label: str, detail: str) -> UserError:
    return UserError(f"{label} did not return the prompt's log-probabilities ({detail}), so choices cannot be "
                     "scored by log-likelihood through it.",
                     "Serve the model with an engine that answers /v1/completions with echo and logprobs (vLLM, "
                     "llama.cpp's server, TGI, jmedlora serve), or use --method generate (chat-only APIs such as "
                     "OpenAI's give no prompt log-probs).",
                     code="loglik.endpoint_no_logprobs", params={"label": label, "detail": detail[:300]})


class CompletionsEndpoint(EndpointGenerator):
    """An OpenAI-compatible server's completions API: generation, and log-likelihoods by echo."""

    supports_loglik = True

    # -- log-likelihoods ------------------------------------------------------------------

    def score_choices(self, questions: list[Question], prompts: list[Prompt]
                      ) -> list[tuple[dict[str, float], dict[str, float]]]:
        """Per question: (sum log-prob per letter, log-prob per character per letter), as the local engine."""
        texts = []
        for q, p in zip(questions, prompts):
            if p.messages is not None:
                raise UserError(f"Log-likelihoods through {self.label} need a text prompt; the chat template is "
                                "applied by the server only for chat completions, which give no log-probs.",
                                "Use --template ja or en (the paper's Alpaca formats) with --method loglik or both.",
                                code="loglik.endpoint_chat", params={"label": self.label})
            texts.append(p.text or "")
        self.guard_privacy({q.problem_id: t + "\n" + "\n".join(q.choices) for q, t in zip(questions, texts)})
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._score_question, questions, texts))

    def _score_question(self, q: Question, text: str) -> tuple[dict[str, float], dict[str, float]]:
        pairs = [split_pair(text, TARGET_DELIMITER + choice) for choice in q.choices]
        context = pairs[0][0]
        if not context:
            raise UserError(f"{q.problem_id}: the prompt is empty, so there is no context to score the choices after.",
                            "Use a prompt template that puts the question before the answer.",
                            code="loglik.endpoint_empty", params={"problem_id": q.problem_id})
        sums = self.prompt_logprob_sums(context, [ctx + cont for ctx, cont in pairs])
        return ({letter: lp for letter, lp in zip(q.letters, sums)},
                {letter: lp / max(1, len(choice)) for letter, lp, choice in zip(q.letters, sums, q.choices)})

    def prompt_logprob_sums(self, context: str, wholes: list[str]) -> list[float]:
        """For each string in ``wholes`` (the context followed by a continuation): the summed log-prob
        of its tokens after the context's own tokens, from one echo request."""
        with endpoint_errors(self.model_name), _completions_refused(self.label):
            resp = self.client.completions.create(model=self.model_name, prompt=[context, *wholes], max_tokens=1,
                                                  echo=True, logprobs=1, temperature=0.0)
        choices = sorted(resp.choices, key=lambda c: c.index)
        if len(choices) != 1 + len(wholes):
            raise no_prompt_logprobs(self.label, f"{len(choices)} answers for {1 + len(wholes)} prompts")
        n_context = len(_prompt_token_logprobs(choices[0], self.label))
        sums = []
        for choice in choices[1:]:
            tail = _prompt_token_logprobs(choice, self.label)[n_context:]
            if not tail or any(lp is None for lp in tail):
                raise no_prompt_logprobs(self.label, "the continuation's tokens have no log-probs")
            sums.append(float(sum(tail)))
        return sums

    # -- generation -------------------------------------------------------------------------

    def _one(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        if prompt.messages is not None:
            return super()._one(prompt, settings)
        t0 = time.perf_counter()
        with endpoint_errors(self.model_name):
            resp = self.client.completions.create(
                model=self.model_name, prompt=prompt.text or "", temperature=settings.temperature,
                top_p=settings.top_p, max_tokens=settings.max_new_tokens,
                seed=settings.seed if prompt.seed is None else prompt.seed, stop=list(settings.stop) or None)
        return answered(resp.choices[0].text or "", resp, settings, t0)


def _prompt_token_logprobs(choice, label: str) -> list[float | None]:
    """The echoed prompt's token log-probs: all but the one generated token (``max_tokens=1``)."""
    logprobs = getattr(choice, "logprobs", None)
    values = getattr(logprobs, "token_logprobs", None) if logprobs is not None else None
    if not values or len(values) < 2:
        raise no_prompt_logprobs(label, "no echoed prompt tokens in the answer")
    return list(values[:-1])


@contextmanager
def _completions_refused(label: str) -> Iterator[None]:
    """A 404 or a 400 from the completions route: no prompt log-probs there (an unknown model name
    stays ``endpoint.unknown_model``)."""
    import openai
    try:
        yield
    except (openai.NotFoundError, openai.BadRequestError) as exc:
        if getattr(exc, "code", None) == "model_not_found":
            raise
        raise no_prompt_logprobs(label, f"{exc.status_code}: {exc.message}") from exc
