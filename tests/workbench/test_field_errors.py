"""A pipeline's UserError on the page: fields named by their labels, coded errors said in
Japanese from the catalog, anything the catalog cannot say shown in English under a Japanese
note (never a traceback), and a failed job's reason in the page's language."""
from __future__ import annotations

import re
from pathlib import Path

from pipelines import jobs
from pipelines.errors import UserError, disk_full
from workbench import field_errors, messages_ja

LABELS = {"max_steps": {"ja": "最大ステップ数", "en": "Max steps"}}
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def test_every_literal_code_in_the_pipelines_has_japanese():
    """UserError codes are dotted (``jsonl.bad_line``); the server's OpenAI error codes are not ours."""
    codes = {m for f in PIPELINES.glob("*.py")
             for m in re.findall(r'code="([a-z_]+\.[a-z_.]+|disk_full)"', f.read_text())}
    assert codes and codes - set(messages_ja.MESSAGES) == set()


def test_a_coded_error_is_japanese_and_an_uncoded_one_is_marked():
    exc = UserError("max_steps must be at least 1 (got 0).", "Set --max-steps to 1 or more.",
                    code="config.at_least_one", params={"field": "max_steps", "value": 0})
    assert field_errors.message(exc, LABELS, "ja") == ("「最大ステップ数」は 1 以上にしてください（入力：0）。",
                                                       "「最大ステップ数」を 1 以上にしてください。")
    assert field_errors.message(exc, LABELS, "en") == ("「Max steps」 must be at least 1 (got 0).",
                                                       "Set 「Max steps」 to 1 or more.")
    plain = field_errors.message(UserError("Something new broke.", "Try again."), LABELS, "ja")
    assert plain[0] == messages_ja.FALLBACK + "\nSomething new broke." and plain[1] == "Try again."
    # A code the catalog lacks, or parameters its template needs and the error lacks: the English, noted.
    for odd in (UserError("Odd.", code="no.such.code"), UserError("Odd.", code="config.at_least_one")):
        assert field_errors.message(odd, LABELS, "ja")[0] == messages_ja.FALLBACK + "\nOdd."


def test_disk_full_is_said_in_japanese(tmp_path):
    import errno
    exc = disk_full(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.bin")))
    problem, fix = field_errors.message(exc, {}, "ja")
    assert problem.startswith("ディスクがいっぱいです") and "MB" in problem and "再開" in fix


def test_a_failed_job_says_why_in_the_page_language():
    end = {"event": "error", "problem": "Model 'x' not found.", "fix": "Use 'default'.", "code": "model.not_found",
           "params": {"spec": "x"}}
    assert field_errors.job_failure({"end": end}, {}, "ja").startswith("モデル x が見つかりません。\n→ 対処: ")
    assert field_errors.job_failure({"end": end}, {}, "en") == "Model 'x' not found.\n→ Fix: Use 'default'."
    assert field_errors.job_failure({"message": jobs.DEAD}, {}, "ja").startswith("プロセスが報告なしに終了しました")
    exited = field_errors.job_failure({"message": "exited with code 3; see train.log"}, {}, "ja")
    assert "終了コード 3" in exited and "train.log" in exited
    assert field_errors.job_failure({"message": jobs.DEAD}, {}, "en") == jobs.DEAD
