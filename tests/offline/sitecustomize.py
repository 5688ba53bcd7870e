"""Loaded by every Python process of the offline test (it is on their PYTHONPATH): any attempt
to connect a socket anywhere but this machine is logged to $OFFLINE_CONNECT_LOG and refused."""
import ipaddress
import os
import socket
import traceback

_real_connect, _real_connect_ex = socket.socket.connect, socket.socket.connect_ex


def _remote(sock, address) -> str | None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None                                   # a Unix socket never leaves the machine
    host = address[0] if isinstance(address, tuple) else str(address)
    try:
        if ipaddress.ip_address(host.split("%")[0]).is_loopback:
            return None
    except ValueError:
        pass                                          # a name: it would need resolving, so it is outbound
    return f"{host}:{address[1] if isinstance(address, tuple) and len(address) > 1 else '?'}"


def _guard(sock, address):
    target = _remote(sock, address)
    if target:
        with open(os.environ["OFFLINE_CONNECT_LOG"], "a") as log:
            log.write(f"pid {os.getpid()} tried {target}\n{''.join(traceback.format_stack(limit=12))}\n")
        raise OSError(f"offline test: outbound connection to {target} refused")


def connect(self, address):
    _guard(self, address)
    return _real_connect(self, address)


def connect_ex(self, address):
    _guard(self, address)
    return _real_connect_ex(self, address)


if os.environ.get("OFFLINE_CONNECT_LOG"):
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
