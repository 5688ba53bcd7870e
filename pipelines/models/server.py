"""An OpenAI-compatible server for a local model: generation, other tools, and tests, offline.

    jmedlora serve --model default [--adapter DIR] [--host 127.0.0.1] [--port 8000]

Endpoints: ``POST /v1/chat/completions`` (non-streaming, and streaming as server-sent events
with ``"stream": true``), the legacy ``POST /v1/completions`` (raw prompts as text or token ids,
``echo`` and ``logprobs``: what lm-evaluation-harness's ``local-completions`` model scores with;
``pipelines.models.server_completions``), ``GET /v1/models``, ``GET /health``. Chat messages are formatted
with the tokenizer's chat template; an adapter trained here is served in the format it was
trained with (its ``checkpoint.json`` records the template: the paper's Alpaca ``ja``/``en``,
where the last user message becomes the instruction); ``--prompt-format`` overrides either.

The standard library's ``ThreadingHTTPServer`` accepts connections concurrently; the engine
(``pipelines.models.server_engine``) batches the requests waiting at the same time into one forward
pass per step. ``response_format`` (``json_object`` / ``json_schema``) is honoured with
grammar-constrained decoding (``pipelines.models.structured``). A streaming request that waits
behind others receives SSE comments while the engine makes progress, so a client's read
timeout measures a stalled server, not a long queue. From Python,
``start_server(ServeConfig(...))`` serves in a background thread and returns the bound port.
Nothing from a request (prompt or answer) is logged.

Bound beyond loopback (``--host 0.0.0.0``, a LAN address) the server refuses to start without a
token in ``$JMEDLORA_SERVE_TOKEN`` (the environment, not a flag: a flag shows in ``ps`` to every
user of the machine). With a token set, every request needs ``Authorization: Bearer TOKEN``
(an OpenAI client's ``api_key``), loopback clients included: a proxy on the same machine would
otherwise hand the network a way in.

    JMEDLORA_SERVE_TOKEN=$(openssl rand -hex 24) jmedlora serve --host 0.0.0.0
"""
from __future__ import annotations

import hmac
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.locality import is_local
from pipelines.core.workspace import Workspace
from pipelines.models import server_completions as completions
from pipelines.models.server_engine import PROMPT_FORMATS, ApiError, ChatEngine, Job

__all__ = ["ApiError", "ChatEngine", "PROMPT_FORMATS", "ServeConfig", "start_server", "load_engine", "run", "main"]


@dataclass
class ServeConfig:
    model: str = "default"                # any model reference (pipelines.models.references)
    adapter: str | None = None            # PEFT adapter directory applied on top of --model
    host: str = "127.0.0.1"               # loopback: nothing outside this machine can reach it
    port: int = 8000                      # 0 picks a free port
    prompt_format: str = field(default="auto", metadata=cli.choices(*PROMPT_FORMATS))
    """auto = the template an adapter was trained with, else the chat template if the tokenizer has one, else ja"""
    max_tokens: int = field(default=512, metadata=cli.common("max_new_tokens"))  # when a request names none
    batch_size: int = 8                   # concurrent requests generated together
    model_id: str | None = None           # the name clients use; default: the model reference
    device: str | None = None             # cpu, cuda, cuda:1 … (default: the best available)
    workspace: str | None = None


TOKEN_ENV = "JMEDLORA_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16


def serve_token(host: str) -> str | None:
    """The token requests must carry, or None on loopback without one; refuses an open network bind."""
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    # The project's one loopback rule (by resolved address): a host name may resolve anywhere.
    if token is None and not is_local(host, allow=[]):
        raise UserError(f"Refusing to serve on {host} without a token: anyone on the network could use the model "
                        "(and send it patient text).",
                        f"export {TOKEN_ENV}=$(openssl rand -hex 24) before starting; clients send it as their API key. "
                        "Or serve on 127.0.0.1.", code="serve.no_token", params={"host": host, "env": TOKEN_ENV})
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise UserError(f"${TOKEN_ENV} is {len(token)} characters: too short to stop guessing.",
                        f"Use at least {MIN_TOKEN_CHARS} random characters, e.g. $(openssl rand -hex 24).",
                        code="serve.short_token", params={"env": TOKEN_ENV, "min": MIN_TOKEN_CHARS})
    return token


# -- requests and answers: what the handler below reads and writes, apart from HTTP ----------------

CHAT_ROUTES = ("/v1/chat/completions", "/chat/completions")
MODEL_ROUTES = ("/v1/models", "/models")
HEALTH_ROUTES = ("/health", "")


def route(raw_path: str) -> str:
    """The path a request names, without its query or a trailing slash."""
    return raw_path.split("?")[0].rstrip("/")


def request_body(raw: bytes, aliases: set[str], model_id: str) -> dict:
    """The body of a (chat) completion request, checked; an ApiError says what a client got wrong."""
    try:
        req = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc.msg}).") from None
    if not isinstance(req, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if req.get("model") not in aliases:
        raise ApiError(404, f"The model {req.get('model')!r} does not exist; this server serves "
                            f"{model_id!r}.", code="model_not_found")
    if (req.get("n") or 1) != 1:
        raise ApiError(400, "Only n=1 is supported.")
    return req


def token_usage(n_prompt: int, n_new: int) -> dict:
    return {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new}


def completion(engine: ChatEngine, req: dict) -> dict:
    """The whole answer as one ``chat.completion`` object (generated before it returns)."""
    text, n_prompt, n_new, reason = engine.complete(req)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": engine.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}],
            "usage": token_usage(n_prompt, n_new)}


def write_event_stream(wfile, engine: ChatEngine, req: dict, job: Job) -> None:
    """A submitted job's answer as server-sent ``chat.completion.chunk`` events, as it is generated
    (the headers are already sent): a role, the pieces, the finish reason, usage if asked, [DONE]."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def send(delta: dict, reason=None, **extra):
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": engine.model_id,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra}
        wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode("utf-8"))
        wfile.flush()

    send({"role": "assistant", "content": ""})
    for piece in engine.follow(job):
        if piece is None:           # queued behind other requests: the engine is moving
            wfile.write(b": progress\n\n")
            wfile.flush()
        else:
            send({"content": piece})
    _, n_prompt, n_new, reason = engine.result(job)
    send({}, reason)
    if (req.get("stream_options") or {}).get("include_usage"):
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": engine.model_id,
                 "choices": [], "usage": token_usage(n_prompt, n_new)}
        wfile.write(f"data: {json.dumps(chunk)}\n\n".encode("utf-8"))
    wfile.write(b"data: [DONE]\n\n")
    wfile.flush()


def make_handler(engine: ChatEngine, aliases: set[str], token: str | None = None) -> type[BaseHTTPRequestHandler]:
    """The request handler class for one engine: routes, the token check, JSON and SSE answers."""
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "jmedlora-serve"
        disable_nagle_algorithm = True     # headers and body go out separately: avoid 40 ms delayed ACKs

        def log_message(self, format, *args):  # requests may carry patient text: log nothing
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, err: ApiError) -> None:
            self._json(err.status, {"error": {"message": err.message, "type": err.type, "param": None,
                                              "code": err.code}})

        def _authorized(self) -> bool:
            """With a token, every request must carry it (compared in constant time); else a 401."""
            if expected is None:
                return True
            given = (self.headers.get("Authorization") or "").strip().encode()
            if hmac.compare_digest(given, expected):
                return True
            self.close_connection = True       # the body, if any, is not read: do not reuse the connection
            self._error(ApiError(401, "Missing or wrong API key: this server needs Authorization: Bearer TOKEN.",
                                 "invalid_request_error", code="invalid_api_key"))
            return False

        def do_GET(self):
            if not self._authorized():
                return
            path = route(self.path)
            if path in MODEL_ROUTES:
                self._json(200, {"object": "list", "data": [
                    {"id": engine.model_id, "object": "model", "created": int(time.time()), "owned_by": "local"}]})
            elif path in HEALTH_ROUTES:
                self._json(200, {"status": "ok", "model": engine.model_id})
            else:
                self._error(ApiError(404, f"No route GET {path}.", code="not_found"))

        def do_POST(self):
            if not self._authorized():
                return
            path = route(self.path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if path not in CHAT_ROUTES + completions.COMPLETION_ROUTES:
                    raise ApiError(404, f"No route POST {path}; this server offers /v1/chat/completions and "
                                        "/v1/completions.", code="not_found")
                req = request_body(raw, aliases, engine.model_id)
                if path in completions.COMPLETION_ROUTES:
                    submitted = completions.submit(engine, req)    # errors in the request surface here
                    if req.get("stream"):
                        self._stream(lambda: completions.write_stream(self.wfile, engine, req, submitted))
                    else:
                        self._json(200, completions.response(engine, submitted))
                elif req.get("stream"):
                    job = engine.submit(req)
                    self._stream(lambda: write_event_stream(self.wfile, engine, req, job))
                else:
                    self._json(200, completion(engine, req))
            except (BrokenPipeError, ConnectionResetError):  # the client went away; its job still finishes
                self.close_connection = True
            except ApiError as err:
                self._error(err)
            except Exception as exc:  # a bug or out of memory: the client gets a 500, the server lives on
                self._error(ApiError(500, f"{type(exc).__name__}: {exc}", "server_error"))

        def _stream(self, write: Callable[[], None]) -> None:
            """Server-sent events, once the request's jobs are queued (its errors came before any header)."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            write()

    return Handler


# -- serving ---------------------------------------------------------------------------------------

@dataclass
class ServerHandle:
    server: ThreadingHTTPServer
    thread: threading.Thread
    host: str
    port: int
    model_id: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def load_engine(config: ServeConfig, *, workspace: Workspace | None = None) -> ChatEngine:
    from pipelines.models.backends import backend_type, check_text_model, open_backend
    from pipelines.models.generation import LocalGenerator
    from pipelines.models.references import resolve_model
    ws = workspace or Workspace.resolve(config.workspace)
    ref = resolve_model(config.model, config.adapter, ws)
    check_text_model(ref)           # the server's chat API takes text only
    # Streaming and batching need the Hugging Face model itself, in this process.
    if backend_type(ref) is not LocalGenerator:
        raise UserError(f"{config.model} is already an API endpoint; there is nothing to serve.",
                        "Serve a local model: --model default, a model directory, or a registered checkpoint.",
                        code="serve.endpoint", params={"model": str(config.model)})
    backend = open_backend(ref, device=config.device)
    model_id = config.model_id or (Path(ref.spec).name if "/" in ref.spec else ref.spec)
    return ChatEngine(backend.model, backend.tokenizer, model_id=model_id,
                      prompt_format=trained_format(ref.adapter) if config.prompt_format == "auto" else config.prompt_format,
                      max_tokens=config.max_tokens, batch_size=config.batch_size)


def trained_format(adapter: str | None) -> str:
    """The prompt format an adapter learned (its checkpoint.json records the training template), else auto:
    an adapter tuned on the Alpaca ``ja`` format answers poorly when prompted through a chat template."""
    if not adapter:
        return "auto"
    try:
        template = json.loads((Path(adapter) / "checkpoint.json").read_text(encoding="utf-8")).get("template")
    except (OSError, ValueError):
        return "auto"
    return template if template in PROMPT_FORMATS else "auto"


def start_server(config: ServeConfig, engine: ChatEngine | None = None, *,
                 workspace: Workspace | None = None) -> ServerHandle:
    """Serve in a background thread; returns at once with the bound port (``port=0``: a free one)."""
    token = serve_token(config.host)            # before loading a model: a refusal should be instant
    engine = engine or load_engine(config, workspace=workspace)
    aliases = {engine.model_id, config.model}
    try:
        server = ThreadingHTTPServer((config.host, config.port), make_handler(engine, aliases, token))
    except OSError as exc:
        raise UserError(f"Cannot listen on {config.host}:{config.port} ({exc.strerror}).",
                        "Pick another --port (or 0 for any free port).",
                        code="serve.listen",
                        params={"host": config.host, "port": config.port, "detail": exc.strerror}) from None
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="jmedlora-serve", daemon=True)
    thread.start()
    return ServerHandle(server, thread, config.host, server.server_address[1], engine.model_id)


def run(config: ServeConfig, on_event: Callable[[dict], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C)."""
    handle = start_server(config)
    if on_event:
        on_event({"event": "listening", "base_url": handle.base_url, "model": handle.model_id})
    try:
        while handle.thread.is_alive():
            handle.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


@cli_guard
def main(argv: list[str] | None = None) -> None:
    config = cli.config_from_args(ServeConfig, cli.config_parser("serve", ServeConfig, __doc__).parse_args(argv))
    run(config, lambda e: print(f"serving {e['model']} at {e['base_url']}  (Ctrl-C stops)", flush=True))


if __name__ == "__main__":
    main()
