"""A pipeline's UserError on the page: fields named by their labels, coded errors said in
Japanese from the catalog, anything the catalog cannot say shown in English under a Japanese
note (never a traceback), and a failed job's reason in the page's language."""
from __future__ import annotations

import ast
import re
import string
from pathlib import Path

from pipelines.core import jobs
from pipelines.core.errors import UserError, disk_full
from workbench import field_errors, messages_ja

LABELS = {"max_steps": {"ja": "最大ステップ数", "en": "Max steps"}}
PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


# UserErrors that only a command line can raise (its own argument checks and prompts), so no page
# ever shows them: (module, function). Everything else raised in pipelines/ carries a code.
CLI_ONLY = {("audit.py", "main"), ("auth.py", "main"), ("auth.py", "_ask_password"), ("curate.py", "main"),
            ("curate_cli.py", "known_dataset")}
# Parameters the catalog derives from others (``messages_ja.prepare``).
DERIVED = {"reason", "free", "lines", "problem", "path"}
# Helpers that raise a UserError for their caller: (module, name) -> code prefix. A call passes the
# code's last part third (or as code=) and the parameters as keywords.
HELPERS = {("config.py", "bad"): "config."}   # pipelines/training/config.py


def user_errors():
    """(module, function, call node) for every UserError built in pipelines/: ``UserError(...)`` and a
    subclass's ``super().__init__(...)``."""
    for f in sorted(PIPELINES.rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        subclasses = {c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                      and any(getattr(b, "id", None) == "UserError" for b in c.bases)}
        inside_helpers = {id(n) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
                          and (f.name, fn.name) in HELPERS for n in ast.walk(fn)}   # its code is its caller's
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or id(fn) in inside_helpers:
                continue
            in_subclass = any(fn in c.body for c in subclasses)
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None)
                init = in_subclass and getattr(node.func, "attr", None) == "__init__"
                if id(node) in inside_helpers:
                    continue
                if name == "UserError" or init or (f.name, name) in HELPERS:
                    yield f.name, fn.name, node


def codes_of(call) -> list[str]:
    kw = next((k for k in call.keywords if k.arg == "code"), None)
    value = kw.value if kw else call.args[2] if isinstance(call.func, ast.Name) and call.func.id != "UserError" \
        and len(call.args) > 2 else None
    prefix = next((p for (_, name), p in HELPERS.items() if getattr(call.func, "id", None) == name), "")
    return [] if value is None else [prefix + n.value for n in ast.walk(value) if isinstance(n, ast.Constant)
                                     and isinstance(n.value, str)]


def params_of(call) -> set[str] | None:
    """The parameter names a raise site passes, when it spells them out."""
    if getattr(call.func, "id", None) != "UserError" and not isinstance(call.func, ast.Attribute):
        return {k.arg for k in call.keywords if k.arg not in (None, "code")}
    params = next((k.value for k in call.keywords if k.arg == "params"), None)
    if not isinstance(params, ast.Dict) or any(k is None for k in params.keys):
        return set() if params is None else None
    return {k.value for k in params.keys}


def test_every_user_error_in_the_pipelines_has_a_code_with_japanese():
    """A UserError without a code shows English on the Japanese page: every one a page can show has
    a code (the ``CLI_ONLY`` ones aside), every code has Japanese, and a template names only
    parameters its raise sites pass. Codes are dotted (``jsonl.bad_line``) or ``disk_full``; the server's OpenAI error codes are not ours."""
    found = list(user_errors())
    uncoded = sorted({(m, fn, c.lineno) for m, fn, c in found if not codes_of(c)} )
    assert [u for u in uncoded if u[:2] not in CLI_ONLY] == []
    assert {u[:2] for u in uncoded} == CLI_ONLY            # an allow-list entry that no longer applies goes
    codes = {code for _, _, c in found for code in codes_of(c)}
    assert len(codes) > 150 and codes - set(messages_ja.MESSAGES) == set()
    assert all(re.fullmatch(r"[a-z_]+\.[a-z0-9_.]+|disk_full", code) for code in codes), codes
    for m, fn, call in found:
        given = params_of(call)
        if given is None:
            continue
        given |= DERIVED
        for code in codes_of(call):
            for template in filter(None, messages_ja.MESSAGES[code]):
                wanted = {name for _, name, _, _ in string.Formatter().parse(template) if name}
                assert wanted <= given, (m, fn, code, wanted - given)


def test_the_catalog_parts_share_no_code():
    """The catalog is in parts by subject; a code in two would have one Japanese text hide the other."""
    seen: set[str] = set()
    for part in messages_ja.PARTS:
        assert not seen & set(part), sorted(seen & set(part))
        seen |= set(part)


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
    assert field_errors.job_message({"end": end}, {}, "ja").startswith("モデル x が見つかりません。\n→ 対処: ")
    assert field_errors.job_message({"end": end}, {}, "en") == "Model 'x' not found.\n→ Fix: Use 'default'."
    assert field_errors.job_message({"message": jobs.DEAD}, {}, "ja").startswith("プロセスが報告なしに終了しました")
    exited = field_errors.job_message({"message": "exited with code 3; see train.log"}, {}, "ja")
    assert "終了コード 3" in exited and "train.log" in exited
    assert field_errors.job_message({"message": jobs.DEAD}, {}, "en") == jobs.DEAD


def _raised(fn, *args, **kwargs) -> UserError:
    try:
        fn(*args, **kwargs)
    except UserError as exc:
        return exc
    raise AssertionError(f"{fn.__name__} raised nothing")


def test_errors_from_the_pipelines_read_in_japanese_with_the_form_labels(workspace):
    from pipelines.data import documents
    from pipelines.data import endpoint
    from pipelines.evaluation import evaluator as evaluate
    from pipelines.evaluation import freeform
    from pipelines.training import estimate as train_estimate
    labels = {"out": {"ja": "出力フォルダ", "en": "Output folder"},
              "chunk_size": {"ja": "断片の長さ", "en": "Chunk size"}}
    said = {
        "out": field_errors.message(_raised(evaluate.EvalConfig(out="").validate), labels, "ja"),
        "chunk": field_errors.message(_raised(documents._windows, 10, 0, 0), labels, "ja"),
        "empty": field_errors.message(_raised(freeform.build_prompt, "  "), labels, "ja"),
        # An error wrapped in another says the inner one in Japanese too.
        "shape": field_errors.message(_raised(train_estimate.shape_config, "no-such-model", workspace), labels, "ja"),
        "privacy": field_errors.message(endpoint.PrivacyBlocked("https://api.example.com/v1", [
            {"chunk_id": "c1", "kind": "phone", "label": "phone number", "text": "090-1234-5678"}]), labels, "ja"),
    }
    assert said["out"] == ("出力フォルダが指定されていません。", "「出力フォルダ」を指定してください。")
    assert said["chunk"][0] == "「断片の長さ」（0）が小さすぎます。"
    assert said["empty"][0] == "指示が空です。"
    assert said["shape"][0].startswith("モデル no-such-model が見つかりません。 見積もりに必要なのは"), said["shape"]
    assert "電話番号 '090-1234-5678'" in said["privacy"][0] and "https://api.example.com/v1" in said["privacy"][0]
    for problem, fix in said.values():
        assert messages_ja.FALLBACK not in problem and re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", problem + fix)


def test_every_privacy_kind_has_japanese():
    from pipelines.core import privacy
    assert set(messages_ja.PRIVACY_KINDS) == set(privacy.KINDS)


def status_messages():
    """(module, code, keyword names) for every ``say(code, text, **params)`` in pipelines/."""
    for f in sorted(PIPELINES.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) == "say"
                                               or getattr(node.func, "id", None) == "say"):
                assert isinstance(node.args[0], ast.Constant), f"{f.name}:{node.lineno}: say() needs a literal code"
                yield f.name, node.args[0].value, {k.arg for k in node.keywords}


def test_every_status_message_of_the_pipelines_is_in_the_japanese_catalog():
    found = list(status_messages())
    assert {"train.finished", "train.stopped", "job.stopped", "job.dead"} <= {code for _, code, _ in found}
    for module, code, params in found:
        assert code in messages_ja.STATUS, f"{module}: status code {code!r} has no Japanese text"
        named = {name for _, name, _, _ in string.Formatter().parse(messages_ja.STATUS[code]) if name}
        assert named <= params, f"{module}: {code!r} names {named - params} that say() does not pass"


def test_a_running_or_finished_job_speaks_the_page_language(tmp_path):
    jobs.update_status(tmp_path, status="finished", **jobs.say("train.finished", "finished 4 steps in 0:00:36",
                                                                steps=4, took="0:00:36"))
    st = jobs.status(tmp_path)
    assert field_errors.job_message(st, {}, "ja") == "4 ステップで完了しました（所要 0:00:36）"
    assert field_errors.job_message(st, {}, "en") == "finished 4 steps in 0:00:36"
    # A later message without a code does not keep the old code's Japanese.
    jobs.update_status(tmp_path, message="something new")
    st = jobs.status(tmp_path)
    assert st["message_code"] is None
    assert field_errors.job_message(st, {}, "ja") == messages_ja.FALLBACK + "\nsomething new"
