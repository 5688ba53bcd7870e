"""Every Data/Train/audit handler that asks for the request gets it from Gradio, after its inputs:
else every edit, export and run would be recorded as "local" (or the request would land on an input)."""
import functools
import inspect

import gradio as gr
from gradio.helpers import special_args

from workbench import app
from workbench.state import AppState


def test_handlers_asking_for_the_user_receive_the_request_after_their_inputs(workspace):
    demo = app.build_app(AppState(workspace=workspace))
    checked = set()
    for block_fn in demo.fns.values():
        fn = block_fn.fn
        if not isinstance(fn, functools.partial) or "request" not in inspect.signature(fn.func).parameters:
            continue
        if not fn.func.__module__.startswith(("workbench.data_", "workbench.train_", "workbench.audit_",
                                              "workbench.compare_eval", "workbench.tab_merge")):
            continue
        n = len(block_fn.inputs)
        args = special_args(fn, list(range(n)), request=gr.Request(username="dr-sato"))[0]
        assert args[:n] == list(range(n)) and isinstance(args[n], gr.Request), fn.func.__name__
        checked.add(fn.func.__name__)
    assert {"generate", "scan", "import_jsonl", "load_record", "save_edit", "set_status", "export", "launch",
            "resume", "stop", "view", "visible_for"} <= checked
    stops = {fn.func.__module__ for fn in (b.fn for b in demo.fns.values())
             if isinstance(fn, functools.partial) and fn.func.__name__ == "stop"}
    assert stops == {"workbench.data_handlers", "workbench.train_handlers", "workbench.compare_eval",
                     "workbench.tab_merge"}, stops
