"""Instruction-data generation: documents → chunks → an OpenAI-compatible model → Q&A records.

    jmedlora datagen --docs DIR --base-url URL --model NAME --dataset NAME \\
        [--concurrency 4] [--pairs 15] [--template paper_en|paper_ja|FILE] [--temperature 0.7] \\
        [--max-requests N] [--max-tokens-budget N] [--allow-remote-pii] [--workspace DIR]

Leave out ``--base-url`` to generate fully offline: the workbench then serves ``--model``
(``default``, a model directory or a registered checkpoint) itself on 127.0.0.1.

What a run does, top to bottom (``run``), each step in its module of ``pipelines.data``:
1. load and chunk the documents; render the prompt (``assets/prompts/datagen``) per chunk
   (``chunk_prompts``);
2. open the endpoint (``endpoint``): the in-process server without ``--base-url``, its address
   pinned either way;
3. look every chunk up in the request cache (chunk id + prompt hash + model): work already
   done is re-read from the cache, never re-sent, so an interrupted run resumes for free;
4. privacy guard (``endpoint``): for an endpoint that is not on this machine, scan the chunks to
   be sent and refuse if personal data is found, unless ``allow_remote_pii``;
5. send the rest (``chunk_dispatch``), ``concurrency`` requests in flight, retrying 429/5xx/timeouts
   with exponential backoff and jitter, within the request/token budget (``chunk_requests``);
   Pairs are asked for as JSON (``response_format`` with a schema: the local server enforces
   it token by token); an endpoint that refuses it gets the paper's free-text prompt;
6. each response is cached, parsed (``qa_parse``) and stored (``store``) in one transaction;
   what could not be parsed is stored verbatim and counted.

The API key is read from ``$OPENAI_API_KEY`` (``api_key_env``) only; it is never stored or logged.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Literal

from pipelines.core import audit, cli, jobs
from pipelines.core.errors import Interrupted, UserError, cli_guard, same_command
from pipelines.core.locality import endpoint_url
from pipelines.core.workspace import Workspace
from pipelines.data import store as datastore
from pipelines.data.chunk_dispatch import ChunkDispatch, Emitter
from pipelines.data.chunk_prompts import load_prompt_template, plan_requests, prepare_chunks
from pipelines.data.endpoint import Endpoint, open_endpoint

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


# -- the run ----------------------------------------------------------------------

def run(config: DatagenConfig, on_event: Callable[[dict], None] | None = None, *,
        stop: threading.Event | None = None, workspace: Workspace | None = None) -> dict:
    """Generate records into ``config.dataset``; returns the final counters. ``stop`` ends early."""
    ws = workspace or Workspace.resolve(config.workspace)
    stop = stop or threading.Event()
    emit = Emitter(on_event)
    _check(config)
    template, prompt_version = load_prompt_template(config.template)
    chunks = prepare_chunks(config)
    with open_endpoint(config, ws) as endpoint:            # an in-process server stops when the block ends
        work = plan_requests(chunks, template, config.pairs, config.free_text, endpoint.model)
        # Answered by an earlier (perhaps interrupted) run: read back below, never sent again.
        done_keys = datastore.cached_keys(ws, [w.key for w in work])
        to_send = [w for w in work if w.key not in done_keys]
        endpoint.guard_privacy([w.chunk for w in to_send], config.allow_remote_pii, emit)
        client = endpoint.client(config)
        _audit_and_announce(ws, config, endpoint, emit, prompt_version, chunks=len(work), to_send=len(to_send))
        dispatch = ChunkDispatch(ws, config, endpoint.model, prompt_version, emit,
                                 total=len(work), cached=len(work) - len(to_send))
        dispatch.replay([w for w in work if w.key in done_keys])
        # The client is closed with the run (its connections, not a destructor at exit): the pool ends first.
        with client:
            dispatch.send_all(client, to_send, stop, endpoint.local)
        if dispatch.fatal:
            raise endpoint.refused(dispatch.fatal, config.api_key_env)
        return _report(ws, config, endpoint, dispatch, stop, prompt_version)


def _check(config: DatagenConfig) -> None:
    if config.pairs < 1 or config.concurrency < 1:
        raise UserError("--pairs and --concurrency must be at least 1.", "Use e.g. --pairs 15 --concurrency 4.",
                        code="datagen.at_least_one", params={"fields": ["pairs", "concurrency"]})
    if not config.dataset.strip():
        raise UserError("No dataset name given.", "Pass --dataset NAME (records are added to it).",
                        code="datagen.no_dataset", params={"field": "dataset"})


def _audit_and_announce(ws: Workspace, config: DatagenConfig, endpoint: Endpoint, emit: Emitter,
                        prompt_version: str, *, chunks: int, to_send: int) -> None:
    audit.record(ws.root, audit.current_user(), "generate", f"dataset:{config.dataset}", phase="start",
                 model=endpoint.model, base_url=endpoint.base_url, local=endpoint.local, chunks=chunks)
    emit({"event": "start", "dataset": config.dataset, "model": endpoint.model, "base_url": endpoint.base_url,
          "local": endpoint.local, "chunks": chunks, "cached": chunks - to_send, "to_send": to_send,
          "prompt_version": prompt_version})


def _report(ws: Workspace, config: DatagenConfig, endpoint: Endpoint, dispatch: ChunkDispatch,
            stop: threading.Event, prompt_version: str) -> dict:
    """The run's last events and audit entry; returns the summary (``stop`` or ``finish``)."""
    n = dispatch.n
    if dispatch.stopped_by:
        dispatch.emit({"event": "budget", "reason": dispatch.stopped_by, **n.snapshot()})
    summary = {"event": "stop" if stop.is_set() else "finish", "dataset": config.dataset, "model": endpoint.model,
               "base_url": endpoint.base_url, "prompt_version": prompt_version, "stopped": stop.is_set(),
               "budget_reached": dispatch.stopped_by, "remaining": n.total - n.done,
               "dataset_records": datastore.count_records(ws, config.dataset),
               "error_messages": n.error_messages, "elapsed_s": round(dispatch.elapsed(), 3), **n.snapshot()}
    audit.record(ws.root, audit.current_user(), "generate", f"dataset:{config.dataset}",
                 phase=summary["event"], dataset_records=summary["dataset_records"])
    dispatch.emit(summary)
    return summary


# -- the command ------------------------------------------------------------------

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
