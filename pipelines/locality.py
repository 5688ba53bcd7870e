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
