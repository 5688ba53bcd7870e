"""Is an address on this machine? Decided by what the name resolves to, never by how it is spelled.

``https://127.0.0.1.example.com/v1`` starts like a loopback address and is a remote server;
``http://localhost:8001`` is local because every address it resolves to is loopback. A host
counts as local only when it resolves and *every* address is loopback, or lies in the
administrator's allow-list (``JMEDLORA_LOCAL_NETWORKS``, comma-separated CIDRs such as a
hospital's isolated inference server ``10.20.0.0/16``). A name that does not resolve is remote:
when in doubt, the privacy guard stays on.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlparse

ALLOW_ENV = "JMEDLORA_LOCAL_NETWORKS"


def allowed_networks(env: str | None = None) -> list[ipaddress._BaseNetwork]:
    raw = os.environ.get(ALLOW_ENV, "") if env is None else env
    nets = []
    for part in raw.split(","):
        if part.strip():
            try:
                nets.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                continue    # a typo must not widen what counts as local
    return nets


def endpoint_url(url: str) -> str:
    """An endpoint's base URL, checked: http(s), a host, and no credentials in it. A key written into
    the URL (``https://user:pass@host/v1``) would be copied wherever the URL is recorded (the access
    log, the registry, a run's config.json and summary.json), so it is refused, never stripped."""
    from pipelines.errors import UserError
    text = (url or "").strip()
    try:
        parts = urlparse(text)
        host, _ = parts.hostname, parts.port          # both raise ValueError on a malformed authority
    except ValueError as exc:
        raise UserError(f"The endpoint URL {text!r} cannot be read ({exc}).",
                        "Write it as http(s)://HOST[:PORT]/v1, e.g. http://127.0.0.1:8000/v1 or http://[::1]:8000/v1.",
                        code="endpoint.bad_url", params={"url": text, "detail": str(exc)}) from None
    if parts.scheme not in ("http", "https") or not host:
        raise UserError(f"The endpoint URL {text!r} is not an http(s) address with a host.",
                        "Write it as http(s)://HOST[:PORT]/v1, e.g. http://127.0.0.1:8000/v1.",
                        code="endpoint.bad_url", params={"url": text, "detail": "scheme or host missing"})
    if parts.username is not None or parts.password is not None:
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise UserError(f"The endpoint URL for {shown} carries a user name or password: it would be written "
                        "into the access log and the run's files.",
                        "Remove it from the URL and give the key in $OPENAI_API_KEY (read from the environment only).",
                        code="endpoint.credentials_in_url", params={"url": shown})
    return text.rstrip("/")


def host_of(url_or_host: str) -> str:
    text = (url_or_host or "").strip()
    if "://" in text:
        return (urlparse(text).hostname or "").lower()
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")].lower()
    return text.lower()


def resolved_addresses(host: str) -> list[ipaddress._BaseAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    out = []
    for info in infos:
        addr = info[4][0].split("%", 1)[0]      # drop an IPv6 zone id
        try:
            out.append(ipaddress.ip_address(addr))
        except ValueError:
            continue
    return out


def is_local(url_or_host: str, *, allow: list | None = None) -> bool:
    """True when every address the host resolves to is loopback or administrator-allowed."""
    host = host_of(url_or_host)
    if not host:
        return False
    addrs = resolved_addresses(host)
    if not addrs:
        return False
    nets = allowed_networks() if allow is None else allow
    return all(a.is_loopback or any(a in n for n in nets) for a in addrs)
