"""The Reports tab's words in Japanese and English: widget labels (``L``), messages (``MSG``),
table headings (``HEAD``) and the blind rating's scale (``RATING``)."""
from __future__ import annotations

Text = dict[str, str]

L: dict[str, Text] = {
    "intro": {"ja": "### 胸部X線レポートの評価\n画像・参照レポート・各モデルの生成レポートを並べ、所見ごとの一致（色つきのチップ）と指標（95%信頼区間）を確認します。",
              "en": "### Chest X-ray report evaluations\nThe image, the reference report and each model's report side by side, with per-finding agreement (coloured chips) and metrics with 95% intervals."},
    "shown": {"ja": "表示する評価結果（2〜4件）", "en": "Evaluations shown (two to four)"},
    "refresh": {"ja": "↻ 一覧を更新", "en": "↻ Refresh list"},
    "summary": {"ja": "評価結果の概要（値と95%信頼区間）", "en": "Summary (value and 95% interval)"},
    "comparison": {"ja": "1件目との差（対応のあるブートストラップ：差 [95%信頼区間] p値）",
                   "en": "Difference from the first (paired bootstrap: difference [95% interval] p)"},
    "findings": {"ja": "所見ごとの一致（F1 と、一致・見落とし・過剰の件数）",
                 "en": "Per finding (F1, and reports agreeing, missed and extra)"},
    "study": {"ja": "症例", "en": "Study"},
    "prev": {"ja": "← 前の症例", "en": "← Previous study"},
    "next": {"ja": "次の症例 →", "en": "Next study →"},
    "disagree": {"ja": "参照と所見が食い違う症例のみ", "en": "Only studies where a finding disagrees with the reference"},
    "zoom": {"ja": "画像の拡大率", "en": "Image zoom"},
    "blind_title": {"ja": "ブラインド評価（臨床医によるレポート評価）", "en": "Blind rating (clinician review of reports)"},
    "start_review": {"ja": "評価を開始／再開", "en": "Start / resume rating"},
    "back": {"ja": "← 直前の評価を変更", "en": "← Change the previous rating"},
    "reveal": {"ja": "結果を開示（管理者）", "en": "Reveal results (administrator)"},
    "harm": {"ja": "⚠ 患者に害を及ぼしうる（例：気胸の見落とし）", "en": "⚠ Could harm a patient (e.g. a missed pneumothorax)"},
    "note": {"ja": "メモ（任意）", "en": "Note (optional)"},
    "correct": {"ja": "✓ 正確", "en": "✓ Accurate"},
    "partly": {"ja": "△ 軽微な誤り", "en": "△ Minor errors"},
    "wrong": {"ja": "✗ 重大な誤り", "en": "✗ Major errors"},
    "skip": {"ja": "スキップ", "en": "Skip"},
    "review_summary": {"ja": "モデル別の評価", "en": "Ratings per model"},
}
MSG: dict[str, Text] = {
    "none": {"ja": "胸部X線レポートの評価結果がまだありません。次のコマンドで作成できます（このワークスペースで実行すると、ここに表示されます）：\n"
                   "  jmedlora models prepare-demo-vlm\n"
                   "  jmedlora evaluate --task report --model demo-vlm --data assets/reports/sample_ja.jsonl --out workspace/evals/report-demo-vlm",
             "en": "No chest X-ray report evaluation yet. Make one with (run in this workspace, it shows here):\n"
                   "  jmedlora models prepare-demo-vlm\n"
                   "  jmedlora evaluate --task report --model demo-vlm --data assets/reports/sample_ja.jsonl --out workspace/evals/report-demo-vlm"},
    "choose": {"ja": "上の「表示する評価結果」でレポートの評価結果を選んでください。",
               "en": "Choose report evaluations under \"Evaluations shown\" above."},
    "too_many": {"ja": "並べて表示できるのは4件までです。最初の4件を表示しています。",
                 "en": "At most four evaluations fit side by side; the first four are shown."},
    "one_only": {"ja": "比較するには評価結果をもう1件選んでください（1件だけでも内容は確認できます）。",
                 "en": "Choose one more evaluation to compare (one alone can still be read)."},
    "no_rows": {"ja": "選んだ評価結果にレポートがまだありません（実行中か、失敗しています）。",
                "en": "The chosen evaluations hold no report yet (still running, or failed)."},
    "no_match": {"ja": "条件に合う症例はありません。", "en": "No study matches this filter."},
    "no_image": {"ja": "症例 {id} の画像を表示できません。", "en": "The image of study {id} cannot be shown."},
    "mixed_data": {"ja": "⚠ 選んだ評価結果は異なる所見ファイル（{files}）で評価されています。症例は id で対応づけています。",
                   "en": "⚠ The chosen evaluations used different report files ({files}); studies are paired by id."},
    "one_side": {"ja": "比較には2件以上の評価結果が必要です。", "en": "A comparison needs two evaluations or more."},
    "left": {"ja": "残り {n} 件（評価者: {who}）", "en": "{n} left (reviewer: {who})"},
    "report": {"ja": "生成レポート #{k}", "en": "Generated report #{k}"},
    "reference": {"ja": "参照レポート", "en": "Reference report"},
    "current": {"ja": "現在の評価: {r}{harm}（変更すると以前の評価は履歴に残ります）",
                "en": "Current rating: {r}{harm} (a change keeps the earlier one in the history)"},
    "harm_flag": {"ja": "・⚠ 有害", "en": ", ⚠ harmful"},
    "done": {"ja": "このバッチのレポートはすべて評価しました。モデル別の結果を下に表示します。",
             "en": "You have rated every report of this batch. The results per model are below."},
    "hidden": {"ja": "モデル名は伏せてあります。モデル別の結果は、バッチの全レポートを評価し終えるまで表示しません（ブラインドを保つため）。",
               "en": "Model names are hidden. The results per model stay hidden until you have rated every report of the batch (to keep it blind)."},
    "none_to_rate": {"ja": "評価するレポートがありません。上の「表示する評価結果」で評価結果を選んでください。",
                     "en": "Nothing to rate. Choose evaluations under \"Evaluations shown\" above."},
    "nothing_back": {"ja": "変更できる直前の評価はありません。", "en": "No earlier rating to change."},
    "not_admin": {"ja": "結果の開示は管理者だけができます。", "en": "Only an administrator can reveal the results."},
    "not_admin_fix": {"ja": "バッチの全レポートを評価すると、自分の結果が表示されます。",
                      "en": "Rate every report of the batch to see your own results."},
    "revealed": {"ja": "管理者として全評価者の結果を開示しました。", "en": "Revealed as administrator: every reviewer's results."},
}
HEAD: dict[str, Text] = {
    "model": {"ja": "モデル", "en": "model"},
    "n": {"ja": "件数", "en": "n"},
    "speed": {"ja": "速度（件/秒）", "en": "reports/s"},
    "metric": {"ja": "指標", "en": "metric"},
    "finding": {"ja": "所見", "en": "finding"},
    "ref_positive": {"ja": "参照で陽性（件）", "en": "positive in reference"},
    "counts": {"ja": "（一致{tp}・見落とし{fn}・過剰{fp}）", "en": " (agree {tp}, missed {fn}, extra {fp})"},
    "vs": {"ja": "{b} − {a}", "en": "{b} − {a}"},
    "study_marks": {"ja": " · 見落とし {fn} · 過剰 {fp}", "en": " · missed {fn} · extra {fp}"},
    "harm": {"ja": "有害 %", "en": "harmful %"},
    "reviewer_n": {"ja": "評価数", "en": "n"},
}
RATING: dict[str, Text] = {
    "correct": {"ja": "正確", "en": "accurate"},
    "partly": {"ja": "軽微な誤り", "en": "minor errors"},
    "wrong": {"ja": "重大な誤り", "en": "major errors"},
}
