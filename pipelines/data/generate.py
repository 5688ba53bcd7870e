"""Instruction-data generation: documents → chunks → an OpenAI-compatible model → Q&A records.

    jmedlora datagen --docs DIR --base-url URL --model NAME --dataset NAME \\
        [--concurrency 4] [--pairs 15] [--template paper_en|paper_ja|FILE] [--temperature 0.7] \\
        [--max-requests N] [--max-tokens-budget N] [--allow-remote-pii] [--workspace DIR]

Leave out ``--base-url`` to generate fully offline: the workbench then serves ``--model``
(``default``, a model directory or a registered checkpoint) itself on 127.0.0.1.

What a run does, top to bottom (``run``):
1. load and chunk the documents; render the prompt (``assets/prompts/datagen``) per chunk;
2. look every chunk up in the request cache (chunk id + prompt hash + model): work already
   done is re-read from the cache, never re-sent, so an interrupted run resumes for free;
3. privacy guard: for an endpoint that is not on this machine, scan the chunks to be sent and
   refuse if personal data is found, unless ``allow_remote_pii``;
4. send the rest, ``concurrency`` requests in flight, retrying 429/5xx/timeouts with
   exponential backoff and jitter, within the request/token budget;
   Pairs are asked for as JSON (``response_format`` with a schema: the local server enforces
   it token by token); an endpoint that refuses it gets the paper's free-text prompt;
5. each response is cached, parsed (``pipelines.data.qa_parse``) and stored (``pipelines.data.store``)
   in one transaction; what could not be parsed is stored verbatim and counted.

The API key is read from ``$OPENAI_API_KEY`` (``api_key_env``) only; it is never stored or logged.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

from pipelines.core import audit, cli, jobs
from pipelines.core.errors import Interrupted, UserError, cli_guard, same_command
from pipelines.core.locality import endpoint_url, pin
from pipelines.core.repo import ASSETS
from pipelines.core.workspace import Workspace
from pipelines.data import privacy
from pipelines.data import store as datastore
from pipelines.data.chunk_requests import Fatal, request_seed, send
from pipelines.data.documents import chunk_documents, hf_token_spans, load_documents
from pipelines.data.qa_parse import parse_pairs
from pipelines.tasks import prompts

TEMPLATE_DIR = ASSETS / "prompts" / "datagen"
# The least time between two "still writing" progress events: a chunk on a CPU takes minutes,
# and its counts move only when it ends.
RECEIVING_EVERY_S = 2.0
API_KEY_ENV = "OPENAI_API_KEY"
# What the embedded 135M model finishes in minutes on a 2-core CPU (the 12 sample chunks: 303 s,
# 26 records); the paper's 15 pairs per chunk need ~2,048 tokens, a quarter of an hour there.
CPU_FIRST_RUN = {"pairs": 3, "max_tokens": 512}


@dataclass
class DatagenConfig:
    docs: str                                  # folder (or file) of .txt/.md/.pdf documents
    dataset: str                               # records are added to this dataset
    model: str                                 # model name at the endpoint (or a local model reference)
    base_url: str | None = None                # OpenAI-compatible endpoint; leave out to serve --model locally
    template: str = "paper_en"                 # name in assets/prompts/datagen, or a .txt path
    pairs: int = 15                            # pairs asked for per chunk (the paper: 15)
    temperature: float = 0.7                   # sampling temperature at the endpoint
    seed: int = 0                              # each chunk's request is seeded from it (same seed, same answers)
    max_tokens: int = field(default=2048, metadata=cli.common("max_new_tokens"))  # per response (15 ja pairs: ~1,500)
    concurrency: int = 4                       # requests in flight
    chunk_by: Literal["lines", "tokens"] = "lines"  # how documents are cut into chunks
    chunk_size: int = 20                       # lines or tokens per chunk
    chunk_overlap: int = 2                     # lines or tokens shared by neighbouring chunks
    tokenizer: str | None = None               # HF tokenizer dir for chunk_by='tokens' (else approximate)
    max_requests: int | None = None            # budget: requests sent by this run
    max_tokens_budget: int | None = None       # budget: total tokens used by this run
    max_retries: int = 6                       # per request (rate limits, timeouts, 5xx)
    retry_base: float = 1.0                    # seconds; doubled per attempt, with jitter
    retry_max_wait: float = 60.0               # seconds: the longest wait between retries
    timeout: float = 180.0                     # seconds per request; on this machine's server: without a token
    free_text: bool = False                    # the paper's free-text prompt only (default: JSON pairs, free text if refused)
    allow_remote_pii: bool = False             # send chunks with personal data to a remote endpoint
    api_key_env: str = API_KEY_ENV             # environment variable holding the endpoint's API key
    workspace: str | None = None

    def __post_init__(self):
        # Checked before anything records the URL (job config, access log): no credentials, a readable host.
        if self.base_url:
            self.base_url = endpoint_url(self.base_url)


class _Pool(ThreadPoolExecutor):
    """On Ctrl-C, leaves without waiting for the requests in flight (their answers are not awaited)."""

    def __exit__(self, exc_type, exc, tb):
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        self.shutdown(wait=not interrupted, cancel_futures=interrupted)
        return False


class PrivacyBlocked(UserError):
    """Raised before anything is sent; ``findings`` lists what was found, per chunk."""

    def __init__(self, base_url: str, findings: list[dict]):
        self.findings = findings
        self.event_fields = {"findings": findings, "base_url": base_url}    # in the job's error event
        lines = [f"  {f['chunk_id']}: {f['label']} {f['text']!r}" for f in findings[:20]]
        if len(findings) > 20:
            lines.append(f"  … and {len(findings) - 20} more")
        super().__init__(
            f"Personal data found in {len({f['chunk_id'] for f in findings})} chunk(s) that would be sent to "
            f"{base_url}, which is not on this machine:\n" + "\n".join(lines),
            "Remove or de-identify it, generate with a local model (leave out --base-url), or, if you are "
            "allowed to send it, pass --allow-remote-pii.",
            code="privacy.blocked",
            params={"url": base_url, "n": len({f["chunk_id"] for f in findings}), "more": max(0, len(findings) - 20),
                    "findings": [{k: f.get(k) for k in ("chunk_id", "kind", "text")} for f in findings[:20]]})


# -- prompts and keys -------------------------------------------------------------

def available_templates() -> list[str]:
    return prompts.available_templates(TEMPLATE_DIR)


def load_prompt_template(name_or_path: str) -> tuple[str, str]:
    """(text, version): version = name + hash of the text, stored with every record."""
    path = prompts.find_template_file(name_or_path, TEMPLATE_DIR, "Generation template")
    text = path.read_text(encoding="utf-8")
    if "{input_text}" not in text:
        raise UserError(f"Template {path} has no {{input_text}} placeholder.",
                        "Add {input_text} where the document chunk goes.",
                        code="template.no_input_text", params={"path": str(path)})
    return text, f"{path.stem}:{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def render_prompt(template: str, chunk_text: str, pairs: int) -> str:
    # Plain replacement, {pairs} first: braces in medical text must stay as they are.
    return template.replace("{pairs}", str(pairs)).replace("{input_text}", chunk_text).rstrip("\n")


JSON_ASK = ('\nAnswer with JSON only: {"pairs": [{"instruction": "...", "output": "..."}, ...]}, '
            'with at most {pairs} pairs.')


def request_key(chunk_id: str, prompt: str, model: str) -> tuple[str, str]:
    prompt_hash = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    key = hashlib.sha256(f"{chunk_id}\0{prompt_hash}\0{model}".encode("utf-8")).hexdigest()
    return key, prompt_hash


def privacy_findings(chunks) -> list[dict]:
    """Personal-data findings in chunks, each with its chunk id (what the guard would show)."""
    out = []
    for c in chunks:
        for f in privacy.scan(c.text):
            out.append({"chunk_id": c.id, "doc": c.doc, **f.to_dict()})
    return out


def prepare_chunks(config: DatagenConfig):
    spans = None
    if config.chunk_by == "tokens" and config.tokenizer:
        from pipelines.models.references import load_tokenizer
        spans = hf_token_spans(load_tokenizer(config.tokenizer))
    return chunk_documents(load_documents(config.docs), by=config.chunk_by, size=config.chunk_size,
                           overlap=config.chunk_overlap, token_spans=spans)


# -- the run ----------------------------------------------------------------------

@dataclass
class _Counters:
    total: int = 0
    done: int = 0
    cached: int = 0
    requests: int = 0
    retries: int = 0
    records: int = 0
    added: int = 0
    unparseable: int = 0
    empty_responses: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    error_messages: list = field(default_factory=list)

    def snapshot(self) -> dict:
        d = asdict(self)
        d.pop("error_messages")
        return d


def run(config: DatagenConfig, on_event: Callable[[dict], None] | None = None, *,
        stop: threading.Event | None = None, workspace: Workspace | None = None) -> dict:
    """Generate records into ``config.dataset``; returns the final counters. ``stop`` ends early."""
    ws = workspace or Workspace.resolve(config.workspace)
    stop = stop or threading.Event()
    lock = threading.RLock()

    def emit(event: dict) -> None:
        if on_event:
            with lock:
                on_event(event)

    if config.pairs < 1 or config.concurrency < 1:
        raise UserError("--pairs and --concurrency must be at least 1.", "Use e.g. --pairs 15 --concurrency 4.",
                        code="datagen.at_least_one", params={"fields": ["pairs", "concurrency"]})
    if not config.dataset.strip():
        raise UserError("No dataset name given.", "Pass --dataset NAME (records are added to it).",
                        code="datagen.no_dataset", params={"field": "dataset"})
    template, prompt_version = load_prompt_template(config.template)
    chunks = prepare_chunks(config)

    server = None
    base_url, model = config.base_url, config.model
    if not base_url:
        from pipelines.models import server as serve
        server = serve.start_server(serve.ServeConfig(model=config.model, port=0, workspace=str(ws.root)),
                                    workspace=ws)
        base_url, model = server.base_url, server.model_id
    try:
        # Judged on the address the requests will go to (pinned: the client does not resolve the name again).
        target = pin(base_url)
        local = target.local
        work = []
        for c in chunks:
            prompt = render_prompt(template, c.text, config.pairs)
            json_prompt = prompt + JSON_ASK.replace("{pairs}", str(config.pairs))
            # The JSON-mode prompt names the answer: a cached free-text answer is not reused for it.
            key, phash = request_key(c.id, prompt if config.free_text else json_prompt, model)
            work.append((c, (json_prompt, prompt), key, phash))
        done_keys = datastore.cached_keys(ws, [w[2] for w in work])
        to_send = [w for w in work if w[2] not in done_keys]

        if not local:
            findings = privacy_findings([w[0] for w in to_send])
            if findings and not config.allow_remote_pii:
                raise PrivacyBlocked(base_url, findings)
            if findings:
                emit({"event": "privacy_override", "findings": findings})

        key = os.environ.get(config.api_key_env)
        if not key and not local:
            raise UserError(f"No API key for {base_url}: the environment variable {config.api_key_env} is empty.",
                            f"export {config.api_key_env}=... (read from the environment only, never stored).",
                            code="endpoint.no_key", params={"url": base_url, "env": config.api_key_env})
        import openai
        # On this machine's server, config.timeout bounds the wait for the next token, not the answer.
        # openai.Timeout is whichever HTTP library's Timeout the installed client is built on (httpx up to
        # openai 2.x, httpx2 from 3.x): an httpx object handed to a 3.x client is refused.
        timeout = openai.Timeout(config.timeout, connect=10.0) if local else config.timeout
        client = openai.OpenAI(base_url=target.url, api_key=key or "not-needed", timeout=timeout, max_retries=0,
                               default_headers=target.headers)
        json_refused = threading.Event()

        n = _Counters(total=len(work), cached=len(work) - len(to_send))
        audit.record(ws.root, audit.current_user(), "generate", f"dataset:{config.dataset}", phase="start",
                     model=model, base_url=base_url, local=local, chunks=len(work))
        emit({"event": "start", "dataset": config.dataset, "model": model, "base_url": base_url, "local": local,
              "chunks": len(work), "cached": n.cached, "to_send": len(to_send), "prompt_version": prompt_version})
        t_start = time.perf_counter()
        receiving: dict[str, int] = {}       # chunk id -> characters of its answer arrived so far
        noted = [t_start]

        def writing(chunk_id: str, chars: int) -> None:
            """Progress while answers stream in (called from the request threads)."""
            with lock:
                receiving[chunk_id] = receiving.get(chunk_id, 0) + chars
                now = time.perf_counter()
                if now - noted[0] >= RECEIVING_EVERY_S:
                    noted[0] = now
                    emit({"event": "progress", "elapsed_s": round(now - t_start, 3), "eta_s": None,
                          **n.snapshot(), **receiving_counts()})

        def receiving_counts() -> dict:
            return {"receiving": len(receiving), "receiving_chars": sum(receiving.values())}

        def store(c, key, text, usage=None, cache=None):
            parsed = parse_pairs(text)
            prov = {"source_doc": c.doc, "chunk_id": c.id, "model": model, "prompt_version": prompt_version}
            n.added += datastore.ingest(ws, dataset=config.dataset, key=key, provenance=prov, pairs=parsed.pairs,
                                        response=text, leftovers=parsed.leftovers, cache=cache)
            n.done += 1
            n.records += len(parsed.pairs)
            n.unparseable += len(parsed.leftovers)
            n.empty_responses += not text.strip()
            if usage:
                for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    setattr(n, k, getattr(n, k) + int(usage.get(k) or 0))
            elapsed = time.perf_counter() - t_start
            answered = n.done - n.cached          # ETA from the chunks answered by this run, not the cache
            eta = round(elapsed / answered * (n.total - n.done), 1) if usage is not None and answered > 0 else None
            with lock:
                receiving.pop(c.id, None)
                emit({"event": "progress", "chunk_id": c.id, "source_doc": c.doc, "new_records": len(parsed.pairs),
                      "elapsed_s": round(elapsed, 3), "eta_s": eta, **n.snapshot(), **receiving_counts()})

        # Work done by an earlier (perhaps interrupted) run: read back, nothing sent.
        for c, _, key, _ in work:
            if key in done_keys:
                store(c, key, datastore.cached_response(ws, key)["response"])

        def budget_left() -> str | None:
            if config.max_requests is not None and n.requests >= config.max_requests:
                return f"request budget of {config.max_requests} reached"
            if config.max_tokens_budget is not None and n.total_tokens >= config.max_tokens_budget:
                return f"token budget of {config.max_tokens_budget} reached"
            return None

        def emit_retry(event):
            with lock:               # called from worker threads
                n.retries += 1
                receiving.pop(event.get("chunk_id"), None)      # the answer starts again
                emit(event)

        fatal = None
        stopped_by = None
        queue = iter(to_send)
        # The client is closed with the run (its connections, not a destructor at exit): the pool ends first.
        with client, _Pool(config.concurrency) as pool:
            inflight = {}

            def fill():
                nonlocal stopped_by
                while len(inflight) < config.concurrency and not stop.is_set() and fatal is None:
                    reason = budget_left()
                    if reason:
                        stopped_by = stopped_by or reason
                        return
                    item = next(queue, None)
                    if item is None:
                        return
                    n.requests += 1
                    inflight[pool.submit(send, client, config, model, item[1], emit_retry, item[0].id, stop,
                                         json_refused, local, request_seed(config.seed, item[2]),
                                         lambda chars, cid=item[0].id: writing(cid, chars))] = item

            def cache_inflight(wait: bool = True):
                # Interrupted (a crash in on_event): answers already on their way are still cached, so
                # the next run does not pay for them again. Ctrl-C (wait=False) keeps only those that
                # arrived: the user asked to stop now, not after the slowest request.
                stop.set()
                for fut, (c, _, key, phash) in inflight.items():
                    if not wait and not fut.done():
                        continue
                    try:
                        text, usage, seconds, attempts = fut.result()
                    except Exception:
                        continue
                    datastore.save_response(ws, key=key, chunk_id=c.id, prompt_hash=phash, model=model,
                                            response=text, usage=usage, seconds=seconds, attempts=attempts)

            fill()
            while inflight:
                try:
                    finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                except BaseException as exc:
                    cache_inflight(wait=not isinstance(exc, KeyboardInterrupt))
                    raise
                for fut in finished:
                    c, _, key, phash = inflight.pop(fut)
                    try:
                        text, usage, seconds, attempts = fut.result()
                    except Fatal as exc:
                        fatal = fatal or str(exc)
                        stop.set()
                        continue
                    except Exception as exc:  # retries exhausted or a request the server refused
                        n.errors += 1
                        msg = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
                        n.error_messages.append({"chunk_id": c.id, "message": msg})
                        with lock:
                            receiving.pop(c.id, None)
                        emit({"event": "request_error", "chunk_id": c.id, "message": msg, **n.snapshot()})
                        continue
                    try:
                        store(c, key, text, usage, cache=dict(chunk_id=c.id, prompt_hash=phash, model=model,
                                                              usage=usage, seconds=seconds, attempts=attempts))
                    except BaseException as exc:
                        cache_inflight(wait=not isinstance(exc, KeyboardInterrupt))
                        raise
                fill()
        if fatal:
            raise UserError(f"The endpoint {base_url} refused the requests ({fatal}).",
                            f"Check --model (GET {base_url}/models lists them) and the key in ${config.api_key_env}.",
                            code="endpoint.refused",
                            params={"url": base_url, "detail": str(fatal), "env": config.api_key_env})
        if stopped_by:
            emit({"event": "budget", "reason": stopped_by, **n.snapshot()})
        summary = {"event": "stop" if stop.is_set() else "finish", "dataset": config.dataset, "model": model,
                   "base_url": base_url, "prompt_version": prompt_version, "stopped": stop.is_set(), "budget_reached": stopped_by,
                   "remaining": len(work) - n.done, "dataset_records": datastore.count_records(ws, config.dataset),
                   "error_messages": n.error_messages, "elapsed_s": round(time.perf_counter() - t_start, 3),
                   **n.snapshot()}
        audit.record(ws.root, audit.current_user(), "generate", f"dataset:{config.dataset}",
                     phase=summary["event"], dataset_records=summary["dataset_records"])
        emit(summary)
        return summary
    finally:
        if server is not None:
            server.stop()


def command_args(config: DatagenConfig) -> list[str]:
    """The ``jmedlora datagen`` arguments that make this run (defaults left out)."""
    default = DatagenConfig(docs="", dataset="", model="")
    args: list[str] = []
    for f in dataclasses.fields(DatagenConfig):
        value = getattr(config, f.name)
        if f.name in ("retry_base", "retry_max_wait", "api_key_env") or value is None or value is False or \
                (value == getattr(default, f.name) and f.name not in ("docs", "dataset", "model")):
            continue
        flag = f.metadata.get("cli_flag") or "--" + f.name.replace("_", "-")     # as --help spells it
        args += [flag] if value is True else [flag, str(value)]
    return args


def _print_event(event: dict) -> None:
    kind = event["event"]
    if kind == "start":
        print(f"{event['chunks']} chunks ({event['cached']} cached, {event['to_send']} to send) → "
              f"{event['model']} @ {event['base_url']}", file=sys.stderr)
    elif kind in ("progress", "request_error"):
        extra = f"  error: {event['message']}" if kind == "request_error" else ""
        eta = f"  ETA {event['eta_s']:.0f}s" if event.get("eta_s") is not None else ""
        writing = f"  writing {event['receiving_chars']} chars in {event['receiving']}" \
            if event.get("receiving") else ""
        print(f"[{event['done']}/{event['total']}] records {event['records']}  unparseable {event['unparseable']}  "
              f"errors {event['errors']}  tokens {event['total_tokens']}{eta}{writing}{extra}", file=sys.stderr)
    elif kind in ("retry", "budget", "privacy_override"):
        print(json.dumps(event, ensure_ascii=False)[:300], file=sys.stderr)


@cli_guard
def main(argv: list[str] | None = None) -> None:
    p = cli.config_parser("datagen", DatagenConfig, __doc__)
    p.add_argument("--events", default=None, metavar="FILE", help="also append every event as a JSON line here")
    args = p.parse_args(argv)
    events_path = args.events
    config = cli.config_from_args(DatagenConfig, args)
    log = open(events_path, "a", encoding="utf-8") if events_path else None
    events = jobs.EventWriter.from_env()          # started as a job: events.jsonl in its directory

    def on_event(event):
        _print_event(event)
        if log:
            log.write(json.dumps(event, ensure_ascii=False) + "\n")
            log.flush()

    try:
        with jobs.reporting(events):
            summary = run(config, jobs.tee(on_event, events), stop=jobs.stop_event(events))
    except KeyboardInterrupt:
        raise Interrupted(same_command("datagen", argv) + "   (cached answers are not asked for again)") from None
    finally:
        if log:
            log.close()
    print(json.dumps({k: v for k, v in summary.items() if k != "error_messages"}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
