"""How a tab's module-level handlers are wired: ``bind(handler, state)`` is the handler with
the app state bound (``functools.partial``), and Gradio still passes it the request when the
handler asks for one (``request: gr.Request``, for the logged-in user).

Gradio finds the request parameter by its type hint, which it reads from the callable's
``__call__``; a plain partial exposes none, so ``bind`` points that attribute at the handler
itself (the partial's signature, without the bound arguments, still tells the inputs).
"""
from __future__ import annotations

import functools

import gradio as gr

# With --no-auth there is no login: the one person at the machine.
LOCAL_USER = "local"


def bind(fn, *args):
    p = functools.partial(fn, *args)
    p.__call__ = fn
    return p


def user_of(request: gr.Request | None) -> str:
    """The logged-in user of a request (``gr.Request.username``), ``local`` without login."""
    return (getattr(request, "username", None) or "").strip() or LOCAL_USER
