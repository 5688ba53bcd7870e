"""A small OpenAI-compatible HTTP server for tests and benchmarks: canned answers, injected
errors, fixed latency, and a count of every request it received.

    with FakeOpenAIServer(reply=lambda prompt: "'instruction': q, 'output': a", errors=[429, 500]) as srv:
        client = OpenAI(base_url=srv.base_url, api_key="x")

``errors`` is consumed in order, one status per incoming request, before normal answers resume;
``latency`` is slept per request (concurrently: the server is threaded).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakeOpenAIServer:
    def __init__(self, reply: Callable[[str], str] | str = "", *, errors: list[int] | None = None,
                 latency: float = 0.0, model: str = "fake-model", refuse_response_format: bool = False,
                 stream_pieces: int = 1, piece_delay: float = 0.0):
        self.reply = reply if callable(reply) else (lambda prompt, _r=reply: _r)
        self.errors = list(errors or [])
        self.latency = latency
        self.model = model
        self.lock = threading.Lock()
        self.requests = 0                 # every POST, errors included
        self.answered = Counter()         # prompt → successful answers
        self.error_count = Counter()      # status → times injected
        self.max_inflight = 0
        self.refuse_response_format = refuse_response_format    # an endpoint without structured output
        self.formats = []                 # every response_format asked for
        self.stream_pieces, self.piece_delay = stream_pieces, piece_delay     # a streamed answer, slowly
        self.seeds = {}                   # prompt → the seed it was sent with
        self._inflight = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True     # headers and body go out separately: avoid 40 ms delayed ACKs

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, text: str, usage: dict):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": body.get("model")}
                k = max(1, fake.stream_pieces)
                cut = [len(text) * i // k for i in range(k + 1)]
                chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": text[a:b]},
                                        "finish_reason": "stop" if i == k - 1 else None}]}
                          for i, (a, b) in enumerate(zip(cut, cut[1:]))]
                if (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append({"choices": [], "usage": usage})
                for i, c in enumerate(chunks):
                    if i and fake.piece_delay:
                        time.sleep(fake.piece_delay)
                    self.wfile.write(f"data: {json.dumps({**base, **c})}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model", "owned_by": "test"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if "messages" not in body:     # a chat-only API (OpenAI's today): no legacy completions
                    with fake.lock:
                        fake.requests += 1
                    self._send(404, {"error": {"message": "This is a chat model and not supported in the "
                                                          "v1/completions endpoint.", "type": "invalid_request_error",
                                               "code": None}})
                    return
                prompt = body["messages"][-1]["content"]
                with fake.lock:
                    fake.requests += 1
                    number = fake.requests
                    status = fake.errors.pop(0) if fake.errors else 200
                    fake.seeds[prompt] = body.get("seed")
                    if body.get("response_format"):
                        fake.formats.append(body["response_format"])
                        if fake.refuse_response_format and status == 200:
                            status = 400
                    fake._inflight += 1
                    fake.max_inflight = max(fake.max_inflight, fake._inflight)
                try:
                    # ``latency`` may depend on the request's number (1-based): fast first answers, then slow ones.
                    delay = fake.latency(number) if callable(fake.latency) else fake.latency
                    if delay:
                        time.sleep(delay)
                    if status != 200:
                        with fake.lock:
                            fake.error_count[status] += 1
                        message = "response_format is not supported" if status == 400 else f"injected {status}"
                        self._send(status, {"error": {"message": message, "type": "test", "code": None}},
                                   {"retry-after": "0"} if status == 429 else None)
                        return
                    text = fake.reply(prompt)
                    with fake.lock:
                        fake.answered[prompt] += 1
                    n_prompt, n_out = len(prompt), len(text)
                    if body.get("stream"):
                        self._stream(body, text, {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                                                  "total_tokens": n_prompt + n_out})
                        return
                    self._send(200, {
                        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                                  "total_tokens": n_prompt + n_out}})
                finally:
                    with fake.lock:
                        fake._inflight -= 1

        return Handler
