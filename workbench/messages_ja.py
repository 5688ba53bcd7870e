"""Japanese words for the pipelines' UserErrors, keyed by their ``code``.

Pipelines speak plain English (the CLIs print it) and attach a ``code`` plus ``params``; this
catalog says the same thing in Japanese for the workbench. A template names its parameters
(``{path}``, ``{value}`` ...); ``{field}`` / ``{fields}`` are replaced by the form's labels
before formatting (``field_errors``). A code missing here, or a template whose parameters the
error lacks, leaves the English text in place: never a traceback.
"""
from __future__ import annotations

import errno as errnos
import math

# code -> (problem, fix or None)
MESSAGES: dict[str, tuple[str, str | None]] = {
    "disk_full": ("ディスクがいっぱいです：{path} を書き込めませんでした（空き {free}）。それまでに保存した内容は無事です。",
                  "古いラン・チェックポイント・エクスポートを消して空きを作るか、空きのあるディスクのワークスペースを使い、"
                  "同じ操作をもう一度行ってください（続きから再開します）。"),
    # reading JSONL (pipelines/jsonl.py)
    "jsonl.too_big": ("{path} は {size} あり、読み込める上限 {limit} を超えています。",
                      "正しいファイルか確認してください。大きなデータは分割してください。"),
    "jsonl.unreadable": ("{path} を読めません（{reason}）。", "パスと読み取り権限を確認してください。"),
    "jsonl.bad_line": ("{path} の {line} 行目：{problem}。", "その行を直すか削除してください（1行に1つの JSON オブジェクト）。"),
    "line.too_long": ("1行が {size} あり、1件の上限 {limit} を超えています", None),
    "line.not_object": ("JSON オブジェクト（{{…}}）ではありません（{got}）", None),
    "line.not_utf8": ("UTF-8 ではありません（{byte} バイト目）。ファイルを UTF-8 で保存してください", None),
    "line.malformed": ("JSON の書式が壊れています（{column} 文字目付近）", None),
    # question files (pipelines/igakuqa.py)
    "questions.missing": ("問題ファイル {path} がありません。",
                          "IgakuQA 形式の JSONL ファイルを指定してください（例：assets/questions/sample_ja.jsonl）。"),
    "questions.none_usable": ("{path} に使える問題が1問もありません。",
                              "IgakuQA 形式の JSONL（1行に1問の JSON オブジェクト）か確認してください。"),
    "questions.bad_lines": ("{path} に問題のある行が {n} 件あります：\n{lines}",
                            "該当する行を直してから、もう一度実行してください。"),
    "question.missing": ("必須の項目がありません", None),
    "question.blank_id": ("空欄にできません（結果・再開・比較はこの ID で突き合わせます）", None),
    "question.empty_text": ("空でない文字列が必要です", None),
    "question.choice_keys": ("選択肢のキーは a, b, c… と連続した英字にしてください（指定：{got}）", None),
    "question.choices_type": ("配列か {{\"a\": …}} の形のオブジェクトにしてください", None),
    "question.choice_not_text": ("選択肢はすべて文字列にしてください", None),
    "question.too_many_choices": ("選択肢が多すぎます（最大 {limit}）", None),
    "question.answer_empty": ("選択肢の記号を1つ以上並べた配列にしてください", None),
    "question.answer_unknown": ("選択肢にない記号です：{got}（選択肢 {n} 個：{valid}）", None),
    "question.answer_repeated": ("同じ記号が重複しています", None),
    "question.answer_not_numeric": ("選択肢のない問題の正答は数値にしてください（指定：{got}）", None),
    "question.points_not_number": ("数値ではありません（指定：{got}）", None),
    "question.duplicate_id": ("ID {got} が重複しています", None),
    "question.accuracy_ignored": ("数値ではないため無視しました", None),
    # instruction records (pipelines/curate.py)
    "alpaca.not_a_record": ("{path} の {line} 行目：「instruction」と「output」を文字列で持つレコードではありません。",
                            "各行を Alpaca 形式のレコード（instruction、任意の input、output）にしてください。"),
    # training settings (pipelines/train_config.py)
    "config.not_finite": ("{field}は有限の数にしてください（入力：{value}）。", "{field}に実数を入力してください（例：{default}）。"),
    "config.not_number": ("{field}は数値にしてください（入力：{value}）。", "{field}に数値を入力してください（例：{default}）。"),
    "config.not_whole": ("{field}は整数にしてください（入力：{value}）。", "{field}に整数を入力してください（例：{default}）。"),
    "config.out_of_range": ("{field}＝{value} は範囲 {low}〜{high} の外です。",
                            "{field}を {low}〜{high} の範囲にしてください（既定値 {default}）。"),
    "config.lr_positive": ("{field}は正の数にしてください（入力：{value}）。", "論文では LoRA で 5e-5、QLoRA で 2e-4 を使いました。"),
    "config.lora_positive": ("LoRA のランクとスケールは正の数にしてください（r={r}、α={alpha}）。",
                             "よく使う値：r は 8〜64、α は 16〜32。"),
    "config.dropout": ("{field}は 0 以上 1 未満にしてください（入力：{value}）。", "論文では 0.05 と 0.1 を使いました。"),
    "config.micro_negative": ("{field}は負にできません（入力：{value}）。", "自動にするには 0 にしてください。"),
    "config.at_least_one": ("{field}は 1 以上にしてください（入力：{value}）。", "{field}を 1 以上にしてください。"),
    "config.batch_multiple": ("バッチサイズ {batch} がマイクロバッチ × プロセス数（{micro} × {processes}）の倍数ではありません。",
                              "バッチサイズ＝マイクロバッチ × プロセス数 × 勾配累積回数 となる値にしてください。"),
    "config.save_steps": ("保存ステップ {steps} が 1〜最大ステップ数（{max_steps}）の範囲外です。",
                          "最大ステップ数を増やすか、その保存ステップを消してください。"),
    "config.warmup": ("{field}（{value}）は{max_field}（{max_steps}）より小さくしてください。", "{field}を減らしてください。"),
    "config.negative": ("resume_every、weight_decay、max_grad_norm は負にできません。", "無効にするには 0 にしてください。"),
    "config.run_name": ("ラン名 {name} に「@」や「/」は使えません。", "チェックポイントは「ラン名@ステップ」と名付けられます。"),
    "config.unknown_settings": ("知らない学習設定があります：{fields}。", "その他の設定（JSON）の項目名を確認してください。"),
    "preset.unknown": ("プリセット {name} はありません。", "次のいずれかを選んでください：{known}。"),
    "preset.not_json": ("プリセット {path} が JSON として読めません（{line} 行 {column} 文字目）。",
                        "ファイルを直すか、assets/presets/ の同梱プリセットをコピーして編集してください。"),
    "preset.not_object": ("プリセット {path} は設定のオブジェクト（\"config\"）を持つ JSON にしてください。",
                          "assets/presets/ の同梱プリセットをコピーして編集してください。"),
    "preset.unknown_fields": ("プリセット {path} に知らない項目があります：{fields}。",
                              "項目名の綴りを確認するか、その項目を消してください。"),
    # exports (pipelines/exports.py)
    "export.dotdot": ("書き出し先 {path} に「..」が含まれています。", "{folder} の中のファイル名を指定してください。"),
    "export.outside": ("書き出しは {folder} の中（または管理者が {env} で許可したフォルダ）に限られます。{path} はその外です。",
                       "ファイル名だけを指定する（{folder} に保存されます）か、管理者にフォルダの追加を依頼してください。"),
    "export.symlink": ("書き出し先 {path} はシンボリックリンクを通っています。", "通常のフォルダと名前を指定してください。"),
    "export.folder_format": ("この形式はフォルダに書き出しますが、{name} はファイル名のようです。",
                             "拡張子 {suffix} を外してください（例：{example}）。"),
    "export.exists": ("{path} はすでにあります。", "別の名前にするか、「同名のファイルがあれば上書きする」にチェックを入れてください。"),
    # instruction-data records (pipelines/datastore.py)
    "records.no_id": ("ID {id} のレコードはありません。", "レコード一覧で正しい ID を確認してください。"),
    "records.empty_field": ("{field}は空にできません。", "空にする代わりに、そのレコードを「除外」してください。"),
    # documents (pipelines/documents.py)
    "docs.encoding": ("{path} は UTF-8・Shift_JIS（cp932）・EUC-JP のどの文字コードでも読めません。",
                      "UTF-8 で保存し直してください。"),
    "docs.pdf_encrypted": ("{path} は暗号化された PDF です。", "暗号化していないコピーを保存するか、テキストとして書き出してください。"),
    "docs.pdf_unreadable": ("{path} を PDF として読めません。", "完全な PDF か確認するか、.txt に変換してください。"),
    "docs.pdf_no_text": ("{path} から文字を取り出せません（スキャンした PDF と思われます）。",
                         "先に OCR をかけるか、本文を .txt ファイルで用意してください。"),
    "docs.unsupported": ("{path} は対応していない種類の文書です。", ".txt・.md・.pdf のいずれかに変換してください。"),
    "docs.missing": ("文書フォルダ {path} がありません。", "「文書フォルダまたはファイル」に .txt/.md/.pdf のあるフォルダを指定してください。"),
    "docs.none": ("{path} に .txt・.md・.pdf の文書が見つかりません。", "生成に使う医学文書をそのフォルダに置いてください。"),
    # training data (pipelines/train_data.py)
    "data.none": ("学習データが指定されていません。", "{field}に JSONL ファイル、保存したデータセットのフォルダ、またはデータセット名を入力してください。"),
    "data.not_found": ("学習データ {spec} が見つかりません（ファイル・フォルダ・ワークスペースのデータセットのいずれでもありません）。",
                       "存在する JSONL ファイルかフォルダ、またはワークスペースのデータセット名を指定してください。"),
    "data.dataset_gone": ("データセット {spec} の保存先 {path} がなくなっています。", "データタブでデータセットをもう一度書き出してください。"),
    "data.not_jsonl": ("{path} は JSONL ではありません。指示チューニングには instruction/input/output のレコードが必要です。",
                       ".jsonl ファイル（1行に1レコード）か、保存したデータセットのフォルダを指定してください。"),
    "data.record_empty": ("{where}：「{key}」がないか空です。", "どのレコードにも空でない instruction と output が必要です（input は任意）。"),
    "data.no_records": ("{path} にレコードがありません。", "先にデータタブで指示データを書き出してください。"),
    # merging (pipelines/merge.py, merge_data.py)
    "merge.no_dev": ("開発セットが指定されていません。", "{field}に IgakuQA 形式の JSONL を指定してください（50問あれば足ります）。"),
    "merge.population": ("集団サイズは 4 以上にしてください（CMA-ES は各世代の上位半分から学びます）。",
                         "指定しなければ既定値 4 + 3·ln(次元数) になります。"),
    "merge.test_fraction": ("{field}は 0 より大きく 1 より小さくしてください。", "または{test_field}に別のファイルを指定してください。"),
    "merge.nothing_to_resume": ("{path} には再開できるマージがありません（config.json がありません）。",
                                "{field}にマージの出力フォルダを指定してください。"),
    "merge.overlap": ("開発セットとテストセットが重なっています（同じ ID {ids} 件、同じ問題文 {texts} 件：{shown}）。",
                      "{field}に別の問題のファイルを指定するか、空欄にして開発セットから取り分けてください。"),
    "merge.too_few": ("{path} は問題が少なすぎて {share} をテストに取り分けられません。",
                      "{test_field}に別のファイルを指定するか、{field}を小さくしてください。"),
    "merge.nothing_scorable": ("開発セットにもテストセットにも採点できる問題が残っていません。",
                               "対数尤度の指標には選択肢つきの問題が必要です。ファイルを確認してください。"),
    # hardware and model checks before training (pipelines/train_config.py prepare)
    "hw.too_many_gpus": ("プロセス数 {n} に対して GPU が {have} 台しかありません。", "{field}を GPU の台数以下にしてください。"),
    "hw.too_many_cores": ("プロセス数 {n} に対して CPU コアが {have} 個しかありません。", "{field}をコア数以下にしてください。"),
    "hw.no_4bit": ("QLoRA には 4 ビット読み込み（bitsandbytes 0.49 以降）が必要ですが、この環境では使えません。",
                   "{field}を LoRA にするか、管理者に bitsandbytes 0.49 以降の導入を依頼してください。"),
    "hw.optimizer_gpu": ("paged_adamw_8bit には CUDA の GPU が必要です。", "CPU では{field}を adamw にしてください。"),
    "hw.precision_gpu": ("精度 {value} はこの環境では GPU が必要です。", "CPU では{field}を auto か fp32 にしてください。"),
    "train.not_base": ("{spec} はベースモデルではありません。", "{field}にはベースモデル（default、登録済みのベース／マージ済みモデル、モデルのフォルダ）を選んでください。"),
    "train.too_few_examples": ("学習データが {n} 件しかなく、{processes} プロセス × マイクロバッチ {micro} に足りません。",
                               "データを増やすか、マイクロバッチ（その他の設定の micro_batch_size）を小さくしてください。"),
    "train.eval_data_missing": ("評価データ {path} がありません。", "{field}に IgakuQA 形式の JSONL ファイルを指定してください。"),
    "train.target_modules": ("対象モジュール {missing} はこのモデルにありません。",
                             "このモデルの線形層は {linear} です。{field}をそこから選ぶか all-linear にしてください。"),
    # models (pipelines/models.py)
    "model.not_found": ("モデル {spec} が見つかりません。",
                        "「default」、ローカルのモデルフォルダ、登録済みのモデル名のいずれかを指定してください。"),
    "model.not_a_model_dir": ("{spec} はモデルのフォルダではありません（config.json がありません）。",
                              "config.json と重みのあるフォルダを指定してください。"),
    "model.adapter_not_found": ("アダプタ {spec} が見つかりません（adapter_config.json がありません）。",
                                "学習ランのチェックポイントフォルダなど、PEFT のアダプタフォルダを指定してください。"),
}
TYPES = {"list": "配列", "str": "文字列", "int": "整数", "float": "数値", "bool": "真偽値", "NoneType": "null"}
ERRNO = {errnos.ENOENT: "ファイルがありません", errnos.EACCES: "読み取り権限がありません",
         errnos.EISDIR: "フォルダです", errnos.ENOTDIR: "パスの途中がフォルダではありません"}
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
