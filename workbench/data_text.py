"""The Data tab's words in Japanese and English: messages, table headers, review statuses and
filter names as the page shows them (the stored values stay the pipeline's keys), and the
labels of the form fields, which also name the field in an error (``field_errors``)."""
from __future__ import annotations

Text = dict[str, str]

# Form fields by DatagenConfig / ExportConfig name: labels of the widgets and of errors about them.
FIELDS: dict[str, Text] = {
    "docs": {"ja": "文書フォルダまたはファイル（.txt/.md/.pdf）", "en": "Documents folder or file (.txt/.md/.pdf)"},
    "dataset": {"ja": "データセット名", "en": "Dataset name"},
    "model": {"ja": "生成モデル（ローカル参照名 または エンドポイントのモデル名）",
              "en": "Generator model (local reference, or the endpoint's model name)"},
    "base_url": {"ja": "OpenAI互換エンドポイントURL（空欄＝このマシンでローカル生成）",
                 "en": "OpenAI-compatible endpoint URL (empty = generate locally)"},
    "template": {"ja": "生成プロンプト", "en": "Generation prompt"},
    "pairs": {"ja": "1チャンクあたりのペア数", "en": "Pairs per chunk"},
    "max_requests": {"ja": "リクエスト上限（0＝無制限）", "en": "Request budget (0 = none)"},
    "max_tokens": {"ja": "1回答あたりの最大トークン数", "en": "Max tokens per response"},
    "allow_remote_pii": {"ja": "個人情報を含む文書の外部送信を許可する（許可を得ている場合のみ）",
                         "en": "Allow sending text with personal data to a remote endpoint (only if you are permitted)"},
    "instruction": {"ja": "指示（質問）", "en": "Instruction (question)"},
    "input": {"ja": "入力", "en": "Input"},
    "output": {"ja": "出力（回答）", "en": "Output (answer)"},
    "format": {"ja": "形式", "en": "Format"},
    "out": {"ja": "書き出し先（ワークスペースの exports/ フォルダ内）", "en": "Export to (inside the workspace's exports folder)"},
    "overwrite": {"ja": "同名のファイルがあれば上書きする", "en": "Replace a file of the same name"},
}
FORMAT_WORDS: dict[str, Text] = {
    "csv": {"ja": "CSV（表計算ソフト用）", "en": "CSV (spreadsheet)"},
    "alpaca": {"ja": "Alpaca JSONL（学習用）", "en": "Alpaca JSONL (training)"},
    "hf": {"ja": "Hugging Face 形式（フォルダ、学習・検証に分割）", "en": "Hugging Face datasets (folder, train/eval split)"},
    "text": {"ja": "テキスト（継続事前学習用）", "en": "plain text (continual pretraining)"},
}
HINTS = {      # the paper's values, beside the form's CPU-sized ones
    "pairs": {"ja": "論文（ChatGPT）は15", "en": "The paper (ChatGPT): 15"},
    "max_tokens": {"ja": "15ペアには約2,048", "en": "15 pairs need ~2,048"},
}
HISTORY_FIELDS = {**FIELDS, "status": {"ja": "状態", "en": "status"}}
STATUS_WORDS: dict[str, Text] = {
    "pending": {"ja": "未確認", "en": "pending"}, "accepted": {"ja": "採用", "en": "accepted"},
    "rejected": {"ja": "除外", "en": "rejected"},
}
FILTER_WORDS: dict[str, Text] = {
    "any": {"ja": "いずれかに該当", "en": "any"}, "clean": {"ja": "該当なし", "en": "clean"},
    "empty": {"ja": "空", "en": "empty"}, "too_short": {"ja": "短すぎ", "en": "too short"},
    "too_long": {"ja": "長すぎ", "en": "too long"}, "copies_question": {"ja": "質問の繰り返し", "en": "copies question"},
    "not_japanese": {"ja": "日本語でない", "en": "not Japanese"}, "exact_duplicate": {"ja": "完全重複", "en": "exact duplicate"},
    "near_duplicate": {"ja": "類似重複", "en": "near duplicate"}, "keyword": {"ja": "キーワード", "en": "keyword"},
    "total": {"ja": "合計", "en": "total"}, "flagged": {"ja": "該当あり", "en": "flagged"},
    "exportable": {"ja": "書き出し対象", "en": "exportable"}, "changed": {"ja": "変更", "en": "changed"},
}
FINDING_COLS = {"chunk": {"ja": "チャンク", "en": "chunk"}, "kind": {"ja": "種類", "en": "kind"},
                "text": {"ja": "該当箇所", "en": "text"}}
RECORD_COLS = {"id": {"ja": "ID", "en": "ID"}, "status": {"ja": "状態", "en": "status"},
               "flags": {"ja": "フィルタ", "en": "flags"}, "edited": {"ja": "編集", "en": "edited"},
               "instruction": {"ja": "指示（質問）", "en": "instruction"}, "output": {"ja": "出力（回答）", "en": "output"},
               "source": {"ja": "出典", "en": "source"}}
HISTORY_COLS = {"at": {"ja": "日時", "en": "time"}, "who": {"ja": "利用者", "en": "user"},
                "field": {"ja": "項目", "en": "field"}, "before": {"ja": "変更前", "en": "before"},
                "after": {"ja": "変更後", "en": "after"}}
MSG: dict[str, Text] = {
    "no_findings": {"ja": "個人情報は検出されませんでした（{n} チャンクを確認）。", "en": "No personal data found ({n} chunks checked)."},
    "findings": {"ja": "{k} 件の個人情報らしき箇所が見つかりました。外部エンドポイントへの送信はブロックされます。",
                 "en": "{k} possible personal identifiers found. Sending them to a remote endpoint is blocked."},
    "busy": {"ja": "生成を実行中です。", "en": "Generation is already running."},
    "nothing_running": {"ja": "実行中の生成はありません。", "en": "No generation is running."},
    "stopping": {"ja": "停止を要求しました（処理中のリクエストを保存してから終了します）。",
                 "en": "Stop requested (requests in flight are saved, then the job exits)."},
    "no_dataset": {"ja": "データセットを選んでください。", "en": "Choose a dataset first."},
    "no_record": {"ja": "レコードIDを入力するか、表の行をクリックしてください。", "en": "Enter a record id or click a row in the table."},
    "saved": {"ja": "保存しました。", "en": "Saved."},
    "imported": {"ja": "{n} 件を取り込みました。", "en": "Imported {n} records."},
    "check_path": {"ja": "パスと読み書きの権限を確認してください。", "en": "Check the path and its permissions."},
    "review_first": {"ja": "レコードを確認して採用するか、フィルタ条件を緩めて再実行してください。",
                     "en": "Review some records, or re-run the filters with looser settings."},
    "filtered": {"ja": "フィルタ結果：{counts}", "en": "Filter results: {counts}"},
    "exported": {"ja": "{n} 件（{scope}）を書き出しました：{path}", "en": "Exported {n} records ({scope}): {path}"},
    "exists": {"ja": "{path} は既にあります（上書きしていません）。", "en": "{path} already exists (not replaced)."},
    "exists_fix": {"ja": "別の名前にするか、「同名のファイルがあれば上書きする」にチェックしてください。",
                   "en": "Choose another name, or tick 'Replace a file of the same name'."},
    "scope_accepted": {"ja": "採用済みのみ", "en": "accepted only"},
    "scope_exportable": {"ja": "除外・フィルタ該当を除くすべて（採用済みは常に含む）",
                         "en": "all not rejected or flagged; accepted ones always"},
    "generating": {"ja": "生成", "en": "Generating"},
    "nothing_parsed": {"ja": "回答から質問・回答ペアを1件も読み取れませんでした（{n} 件の応答は解析不能として保存済み）。"
                             "より大きな生成モデルにするか、最大トークン数を増やしてください。",
                       "en": "No question/answer pair could be read from the responses ({n} kept as unparseable). "
                             "Use a larger generator model or raise the max tokens per response."},
    "preparing": {"ja": "準備中（文書の読み込み・ローカルモデルの起動）…",
                  "en": "preparing (reading documents, starting the local model)…"},
    "blocked": {"ja": "{k} 件の個人情報らしき箇所（下の表）が見つかったため、このマシンの外にある {url} への送信を中止しました。"
                      "何も送信していません。\n→ 個人情報を削除・匿名化する／URL を空欄にしてこのマシンで生成する／"
                      "送信の許可がある場合に限り「外部送信を許可する」にチェックする、のいずれかを行ってください。",
                "en": "{k} possible personal identifiers (table below) were found, so nothing was sent to {url}, which is "
                      "not on this machine.\n→ Remove or de-identify them, leave the URL empty to generate on this "
                      "machine, or, only if you are permitted, tick 'Allow sending text with personal data'."},
    "counts": {"ja": "追加 {added} 件 · 解析不能 {unparseable} · キャッシュ {cached} · エラー {errors} · トークン {tokens}",
               "en": "added {added} · unparseable {unparseable} · cached {cached} · errors {errors} · tokens {tokens}"},
    "receiving": {"ja": "生成中の回答 {k} 件・ここまで {chars} 文字", "en": "{k} answers being written, {chars} chars so far"},
    "count": {"ja": "{n} 件", "en": "{n} records"},
    "by_status": {"ja": "状態別", "en": "by status"},
    "by_filter": {"ja": "フィルタ別", "en": "flagged by filter"},
    "stats_title": {"ja": "{name}：{n} 件", "en": "{name}: {n} records"},
    "records_axis": {"ja": "件数", "en": "records"},
}


def header(cols: dict[str, Text], lang: str) -> list[str]:
    return [t[lang] for t in cols.values()]


def word(words: dict[str, Text], key, lang: str) -> str:
    """A stored key as the page shows it (unknown keys as they are)."""
    return words[key][lang] if key in words else ("" if key is None else str(key))
