"""The Train tab's handlers, called as the page calls them but without a browser."""
import functools

from pipelines import train_runs
from workbench import app
from workbench import train_handlers as h
from workbench.state import AppState


def test_an_idle_train_tab_writes_nothing_to_the_workspace(workspace, sql_writes):
    run_dir = workspace.subdir("runs") / "r1"
    run_dir.mkdir()
    train_runs.write_json(run_dir / "config.json", {"config": {"run_name": "r1", "max_steps": 8}})
    train_runs.update_status(run_dir, status="finished", step=8, max_steps=8)
    train_runs.register_run(workspace, "id1", "r1", run_dir)
    """The 2-second timer only reads: an open page must not take SQLite's write lock, which a
    training run or a data generation needs."""
    demo = app.build_app(AppState(workspace=workspace, lang="en"))
    tick = next(f.fn for f in demo.fns.values() if isinstance(f.fn, functools.partial) and f.fn.func is h.tick)
    sql_writes.clear()
    for _ in range(30):                       # one minute of the timer
        frame, choices, progress, *_ = tick(str(run_dir), "en")
    assert list(frame["run"]) == ["r1"] and "r1" in progress
    assert sql_writes == []
