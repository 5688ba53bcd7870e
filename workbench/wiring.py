"""How a tab's module-level handlers are wired: ``bind(handler, state)`` is the handler with
the app state bound (``functools.partial``), and Gradio still passes it the request when the
handler asks for one (``request: gr.Request``, for the logged-in user: ``users.current_user``).

Gradio finds the request parameter by its type hint, which it reads from the callable's
``__call__``; a plain partial exposes none (Gradio then passes ``request=None``: every user
would be "local"), so ``bind`` points that attribute at the handler itself. The partial's
signature, without the bound arguments, still tells Gradio the inputs.
"""
from __future__ import annotations

import functools


def bind(fn, *args):
    p = functools.partial(fn, *args)
    p.__call__ = fn
    return p
