"""Japanese words for the pipelines' UserErrors, keyed by their ``code``, and for job statuses.

Pipelines speak plain English (the CLIs print it) and attach a ``code`` plus ``params``; this
catalog says the same thing in Japanese for the workbench. A template names its parameters
(``{path}``, ``{value}`` ...); ``{field}`` / ``{fields}`` are replaced by the form's labels
before formatting (``field_errors``). A code missing here, or a template whose parameters the
error lacks, leaves the English text in place: never a traceback.

The errors' Japanese is in two parts by subject, merged here into ``MESSAGES``: what users bring
and keep (``messages_ja_data``: files, questions, documents, instruction data, the workspace) and
models and the work done with them (``messages_ja_models``: training, models, generation,
serving, evaluation, merging). Here: job status messages (``STATUS``), the words that go inside
parameters, and the lookup (``translate``, ``problem_text``). Callers use this module only.
"""
from __future__ import annotations

import errno as errnos
import math

from workbench import messages_ja_data, messages_ja_models, messages_ja_reports

# code -> (problem, fix or None), in parts by subject
PARTS = (messages_ja_data.ERRORS, messages_ja_models.ERRORS, messages_ja_reports.ERRORS)
MESSAGES: dict[str, tuple[str, str | None]] = {code: text for part in PARTS for code, text in part.items()}
# Words inside parameters (pipelines/core/privacy.py KINDS, job states, what diverged).
PRIVACY_KINDS = {"name": "患者氏名", "record_number": "患者ID・カルテ番号", "date_of_birth": "生年月日",
                 "date": "完全な日付（和暦）", "phone": "電話番号", "address": "住所", "email": "メールアドレス",
                 "my_number": "マイナンバー（個人番号）"}
WORDS = {"running": "実行中", "queued": "待機中", "loss": "損失", "gradient norm": "勾配ノルム",
         # what a file is, in files.* and paths.* messages
         "import file": "取り込むファイル", "image file": "画像ファイル", "CSV file": "CSV ファイル", "document folder": "文書フォルダ", "question file": "問題ファイル",
         "training data": "学習データ", "evaluation data": "評価データ", "dev questions": "開発セットの問題",
         "test questions": "テストセットの問題", "training state": "学習の途中状態", "model weights": "モデルの重み",
         "adapter weights": "アダプタの重み", "adapter configuration": "アダプタの設定",
         "model configuration": "モデルの設定", "JSONL file": "JSONL ファイル", "report file": "所見ファイル"}
TYPES = {"list": "配列", "str": "文字列", "int": "整数", "float": "数値", "bool": "真偽値", "NoneType": "null"}
ERRNO = {errnos.ENOENT: "ファイルがありません", errnos.EACCES: "読み取り権限がありません",
         errnos.EISDIR: "フォルダです", errnos.ENOTDIR: "パスの途中がフォルダではありません"}
# Job and training status messages (pipelines.core.jobs.say codes), shown in the runs tables.
STATUS = {
    "job.stopped": "ユーザーが停止しました",
    "job.finished": "",
    "job.dead_disk_full": "プロセスが報告なしに終了しました。{path} のあるディスクがいっぱいです（空き {free}）。古いラン・チェックポイント・エクスポートを消して空きを作り、再開してください。",
    "job.dead": "プロセスが報告なしに終了しました（強制終了、メモリ不足、またはマシンの再起動）。最後のチェックポイントから再開してください。",
    "job.exit": "プロセスが終了コード {code} で終了しました（詳細は {log}）。原因を直してから再開してください。",
    "job.no_status": "status.json がありません（ジョブのフォルダではないか、まだ開始していません）",
    "train.starting": "開始しています",
    "train.resuming": "ステップ {step} から再開します",
    "train.loading": "モデルとデータを読み込んでいます",
    "train.training": "学習中",
    "train.training_from": "学習中（ステップ {step} から）",
    "train.stopped": "ステップ {step} で停止しました。再開すると続きから学習します",
    "train.waiting_evals": "チェックポイントの評価を待っています",
    "train.finished": "{steps} ステップで完了しました（所要 {took}）",
}
WHOLE_LINE = "行全体"
MORE = "…ほか {n} 件"
FALLBACK = "（この内容はまだ日本語になっていません。原文のまま表示します）"


def problem_text(p: dict, name) -> str:
    """One bad line of a file (a ``DataProblem.as_params()``) in Japanese; ``name`` labels a field."""
    template = MESSAGES.get(p.get("code") or "", (None,))[0]
    what = template.format(**prepare(p.get("params") or {}, name)) if template else p.get("message", "")
    field = WHOLE_LINE if p.get("field") == "(line)" else name(p.get("field", ""))
    return f"{p.get('file')} の {p.get('line')} 行目（{field}）：{what}"


def prepare(params: dict, name) -> dict:
    """Parameters made Japanese where they are words: field names, type names, error numbers."""
    out = dict(params)
    for key in ("value", "default"):
        if isinstance(out.get(key), float) and not math.isfinite(out[key]):
            out[key] = "無限大" if out[key] > 0 else "負の無限大" if out[key] < 0 else "非数"
    for key in [k for k in out if k == "field" or k.endswith("_field")]:
        out[key] = name(out[key])
    if isinstance(out.get("fields"), (list, tuple)):
        out["fields"] = "、".join(name(f) for f in out["fields"])
    if "got" in out and out.get("got") in TYPES:
        out["got"] = TYPES[out["got"]]
    if "errno" in out:
        out["reason"] = ERRNO.get(out["errno"], f"エラー番号 {out['errno']}")
    for key in ("status", "what"):
        if isinstance(out.get(key), str):
            out[key] = WORDS.get(out[key], out[key])
    if isinstance(out.get("inner"), dict):             # an error wrapped in another: its own words first
        inner = out["inner"]
        said = translate(inner.get("code"), inner.get("params") or {}, name)
        out["inner"] = said[0] if said else inner.get("problem", "")
    if isinstance(out.get("findings"), list):
        lines = [f"  {f.get('chunk_id')}：{PRIVACY_KINDS.get(f.get('kind'), f.get('kind'))} {f.get('text')!r}"
                 for f in out["findings"]]
        if out.get("more"):
            lines.append(MORE.format(n=out["more"]))
        out["lines"] = "\n".join(lines)
    if "free_mb" in out:
        out["free"] = "不明" if out["free_mb"] is None else f"{out['free_mb']:,.0f} MB"
    if isinstance(out.get("problems"), list):
        lines = [problem_text(p, name) for p in out["problems"]]
        if out.get("n", 0) > len(lines):
            lines.append(MORE.format(n=out["n"] - len(lines)))
        out["lines"] = "\n".join(lines)
    if out.get("code") and "line" in out and "problem" not in out:   # one bad line raised alone
        out["problem"] = MESSAGES.get(out["code"], ("{message}",))[0].format(
            **prepare(out.get("params") or {}, name), message=out.get("message", ""))
        out["path"] = out.get("file", "")
    return out


def translate(code: str | None, params: dict, name) -> tuple[str, str | None] | None:
    """(problem, fix) in Japanese, or None when the catalog cannot say it."""
    if not code or code not in MESSAGES:
        return None
    problem, fix = MESSAGES[code]
    try:
        values = prepare(params, name)
        return problem.format(**values), fix.format(**values) if fix else None
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None
