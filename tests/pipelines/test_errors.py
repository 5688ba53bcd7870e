"""CLI errors: user problems and a full disk exit 2 with a message, Ctrl-C exits 130, no traceback."""
import errno
import sqlite3

import pytest

from pipelines.core.errors import Interrupted, UserError, cli_guard, disk_full


def _run(exc, capsys):
    @cli_guard
    def main():
        raise exc
    with pytest.raises(SystemExit) as stop:
        main()
    return stop.value.code, capsys.readouterr().err


def test_disk_full_names_the_path_and_free_space(tmp_path, capsys):
    code, err = _run(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results.jsonl")), capsys)
    assert code == 2 and "disk is full" in err and "results.jsonl" in err and "MB free there" in err
    code, err = _run(sqlite3.OperationalError("database or disk is full"), capsys)
    assert code == 2 and "registry.sqlite" in err and "Traceback" not in err
    assert disk_full(OSError(errno.EACCES, "denied")) is None


def test_ctrl_c_exits_130_with_the_resume_hint(capsys):
    code, err = _run(Interrupted("jmedlora evaluate ... (same command)"), capsys)
    assert code == 130 and "Resume: jmedlora evaluate" in err
    code, err = _run(KeyboardInterrupt(), capsys)
    assert code == 130 and "interrupted" in err


def test_user_error_exits_2_and_bugs_keep_their_traceback(capsys):
    code, err = _run(UserError("Bad thing.", "Do this."), capsys)
    assert code == 2 and "error: Bad thing.\n  Fix: Do this." in err
    with pytest.raises(ZeroDivisionError):
        cli_guard(lambda: 1 / 0)()
