"""Where a generation run's requests go, and what may go there.

``open_endpoint`` serves the model in-process on 127.0.0.1 when no ``--base-url`` is given
(stopped when the run ends), and pins the endpoint's address: locality is judged on the address
the requests will go to, and the client does not resolve the name again. An endpoint that is
not on this machine gets two checks before anything is sent: the privacy guard (``PrivacyBlocked``
unless ``allow_remote_pii``) and an API key, read from the environment only.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from pipelines.core import privacy
from pipelines.core.errors import UserError
from pipelines.core.locality import Pinned, pin
from pipelines.core.privacy import PrivacyBlocked  # noqa: F401  (raised here; callers import it from here too)
from pipelines.core.workspace import Workspace


def privacy_findings(chunks) -> list[dict]:
    """Personal-data findings in chunks, each with its chunk id (what the guard would show)."""
    out = []
    for c in chunks:
        for f in privacy.scan(c.text):
            out.append({"chunk_id": c.id, "doc": c.doc, **f.to_dict()})
    return out


@dataclass
class Endpoint:
    base_url: str        # as the user gave it (or the in-process server's): what messages and the audit name
    model: str           # the model name the endpoint answers to
    target: Pinned       # the judged address the requests go to

    @property
    def local(self) -> bool:
        return self.target.local

    def guard_privacy(self, chunks, allow_remote_pii: bool, emit: Callable[[dict], None]) -> None:
        """Refuse to send personal data off this machine, unless the user said they may."""
        if self.local:
            return
        findings = privacy_findings(chunks)
        if findings and not allow_remote_pii:
            raise PrivacyBlocked(self.base_url, findings)
        if findings:
            emit({"event": "privacy_override", "findings": findings})

    def client(self, config):
        """An ``openai.OpenAI`` client for the run's ``DatagenConfig`` (timeout, api_key_env); it retries
        nothing itself (``chunk_requests.send`` does, with backoff)."""
        key = os.environ.get(config.api_key_env)
        if not key and not self.local:
            raise UserError(f"No API key for {self.base_url}: the environment variable {config.api_key_env} is empty.",
                            f"export {config.api_key_env}=... (read from the environment only, never stored).",
                            code="endpoint.no_key", params={"url": self.base_url, "env": config.api_key_env})
        import openai
        # On this machine's server, config.timeout bounds the wait for the next token, not the answer.
        # openai.Timeout is whichever HTTP library's Timeout the installed client is built on (httpx up to
        # openai 2.x, httpx2 from 3.x): an httpx object handed to a 3.x client is refused.
        timeout = openai.Timeout(config.timeout, connect=10.0) if self.local else config.timeout
        return openai.OpenAI(base_url=self.target.url, api_key=key or "not-needed", timeout=timeout, max_retries=0,
                             default_headers=self.target.headers)

    def refused(self, detail: str, api_key_env: str) -> UserError:
        """The error for a request every further one would also fail (bad key, unknown model)."""
        return UserError(f"The endpoint {self.base_url} refused the requests ({detail}).",
                         f"Check --model (GET {self.base_url}/models lists them) and the key in ${api_key_env}.",
                         code="endpoint.refused",
                         params={"url": self.base_url, "detail": str(detail), "env": api_key_env})


@contextmanager
def open_endpoint(config, ws: Workspace) -> Iterator[Endpoint]:
    """The endpoint of a ``DatagenConfig`` (base_url, model): without a base URL, ``config.model``
    served in-process on a free port until the ``with`` block ends."""
    server = None
    base_url, model = config.base_url, config.model
    if not base_url:
        from pipelines.models import server as serve
        server = serve.start_server(serve.ServeConfig(model=config.model, port=0, workspace=str(ws.root)),
                                    workspace=ws)
        base_url, model = server.base_url, server.model_id
    try:
        # Judged on the address the requests will go to (pinned: the client does not resolve the name again).
        yield Endpoint(base_url, model, pin(base_url))
    finally:
        if server is not None:
            server.stop()
