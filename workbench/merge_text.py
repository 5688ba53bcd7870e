"""The Merge tab's words in Japanese and English: the form's labels (keyed by MergeConfig field,
so an error about ``--dev`` names the field on the page; the inputs and data fields have one
wording per task), messages, the test tables' headers, the chart's words and the verdicts said
again from their codes (a report's own verdict text is English)."""
from __future__ import annotations

Text = dict[str, str]

L: dict[str, Text] = {
    "tab": {"ja": "マージ", "en": "Merge"},
    "intro": {"ja": "### 進化的モデルマージ\n登録済みのアダプタ／モデルを小さな開発セットで重み探索（CMA-ES）してマージし、探索に使っていないテストデータで入力と比べます。画像レポートでは、画像言語モデルの言語部をテキストの言語モデルとマージします。探索は別プロセスで動き、このページを閉じても止まりません。",
              "en": "### Evolutionary model merging\nSearch merge weights (CMA-ES) for registered adapters or models on a small dev set, then compare the merge with its inputs on test data the search never saw. For image reports, a vision-language model's language tower is merged with text LLMs (JRadiEvo). The search is its own process: closing this page does not stop it."},
    "task": {"ja": "マージの対象", "en": "What the merge is for"},
    "inputs": {"ja": "入力（2つ以上：同じベースのアダプタ、または同じ構造のモデル）",
               "en": "Inputs (two or more: adapters of one base, or models of one architecture)"},
    "base": {"ja": "ベースモデル（タスクベクトルの基準、空欄＝入力から推定）", "en": "Base model (task vectors are relative to it; empty = from the inputs)"},
    "method": {"ja": "マージ手法", "en": "Merge method"},
    "dev": {"ja": "開発セット（IgakuQA 形式 JSONL）", "en": "Dev set (IgakuQA-format JSONL)"},
    "test": {"ja": "テストセット（空欄＝開発セットの一部を取り分ける）", "en": "Test set (empty = hold out part of the dev set)"},
    "fraction": {"ja": "テストに取り分ける割合", "en": "Share held out for the test"},
    "metric": {"ja": "探索で最大化する指標", "en": "Metric the search maximises"},
    "objective": {"ja": "探索で最大化する指標", "en": "Score the search maximises"},
    "max_new_tokens": {"ja": "生成する所見の最大トークン数", "en": "Max new tokens of the generated findings"},
    "budget": {"ja": "探索候補数（各入力単独の採点に加えて）", "en": "Search candidates (besides each input alone)"},
    "estimate": {"ja": "時間・メモリの見積もり", "en": "Estimate time and memory"},
    "start": {"ja": "▶ マージ探索を開始", "en": "▶ Start the merge search"},
    "stop": {"ja": "■ 停止（採点済みの候補は保存）", "en": "■ Stop (scored candidates are kept)"},
    "resume": {"ja": "↻ 再開", "en": "↻ Resume"},
    "out": {"ja": "マージの出力フォルダ", "en": "Merge output folder"},
    "command": {"ja": "同じマージを行うコマンド", "en": "Equivalent command"},
    "verdict": {"ja": "テストセットでの結果", "en": "Result on the test set"},
    "table": {"ja": "テストセットの比較（平均と95%信頼区間）", "en": "Test-set comparison (mean and 95% CI)"},
    "compare": {"ja": "比較タブで入力と並べて開く", "en": "Open beside its inputs in Compare"},
    "reports": {"ja": "レポート画面で開く", "en": "Open in the Reports view"},
}
# The fields whose wording depends on the task: an image-report merge takes a VLM and report files.
REPORT_FIELDS: dict[str, Text] = {
    "inputs": {"ja": "入力（1つ目に画像言語モデル、続けてテキストの言語モデル）",
               "en": "Inputs (the vision-language model first, then text LLMs)"},
    "dev": {"ja": "開発セット（所見レポート JSONL）", "en": "Dev set (report JSONL)"},
    "test": {"ja": "テストセット（所見レポート JSONL、空欄＝開発セットの一部を取り分ける）",
             "en": "Test set (report JSONL; empty = hold out part of the dev set)"},
    "base": {"ja": "ベースモデル（画像言語モデルの言語部とテキストの言語モデルの元になったモデル）",
             "en": "Base model (the text model the VLM's language tower and the LLMs derive from)"},
}
# Under the inputs, per task (a hint is always there: Gradio keeps an old one when sent none).
INPUTS_HINT: dict[str, Text] = {
    "exam": {"ja": "例：同じランの2つのチェックポイント、または同じベースで学習した2つのアダプタ",
             "en": "e.g. two checkpoints of one run, or two adapters trained on one base"},
    "report": {"ja": "例：demo-vlm、続けて言語部と同じ構造のテキストの言語モデル（アダプタは不可）",
               "en": "e.g. demo-vlm, then text LLMs of its language tower's architecture (no adapters)"},
}
TASKS: dict[str, Text] = {"exam": {"ja": "試験問題", "en": "Exam questions"},
                          "report": {"ja": "画像レポート", "en": "Image reports"}}
OBJECTIVES: dict[str, Text] = {
    "rouge_l": {"ja": "ROUGE-L（JRadiEvo と同じ：所見を生成して採点）", "en": "ROUGE-L (JRadiEvo's: findings generated and scored)"},
    "loglik": {"ja": "参照所見の対数尤度（速い：生成しない）", "en": "Log-likelihood of the reference findings (fast: no generation)"},
}
# The chart's y axis of a report merge: what a candidate's dev score is.
AXIS: dict[str, Text] = {
    "rouge_l": {"ja": "開発セットの ROUGE-L（生成した所見）", "en": "dev ROUGE-L (generated findings)"},
    "loglik": {"ja": "参照所見の対数尤度（1トークンあたり・開発セット平均）", "en": "reference log-likelihood per token (dev mean)"},
}
TABLE_COLS = ["role", "model", "dev", "test", "ci_low", "ci_high"]
COLS: dict[str, Text] = {
    "role": {"ja": "役割", "en": "role"}, "model": {"ja": "モデル", "en": "model"},
    "dev": {"ja": "開発セット", "en": "dev"}, "test": {"ja": "テスト平均", "en": "test"},
    "ci_low": {"ja": "95%信頼区間 下限", "en": "ci_low"}, "ci_high": {"ja": "95%信頼区間 上限", "en": "ci_high"}}
# A report merge's test table: one row per report metric, "mean [95% CI]" cells.
REPORT_COLS: dict[str, Text] = {
    "metric": {"ja": "指標", "en": "metric"},
    "vlm": {"ja": "画像言語モデル（{name}）", "en": "VLM ({name})"},
    "merge": {"ja": "マージ（{name}）", "en": "merge ({name})"},
    "diff": {"ja": "差：マージ − 画像言語モデル", "en": "merge − VLM"},
}
ROLES: dict[str, Text] = {"base": {"ja": "ベース", "en": "base"}, "input": {"ja": "入力 {k}", "en": "input {k}"},
                          "merge": {"ja": "マージ", "en": "merge"}}
CHART: dict[str, Text] = {
    "ja": {"title": "マージ探索", "x_title": "世代（0＝各入力そのまま）", "generation": "世代",
           "candidate": "候補", "best": "これまでの最良", "score": "開発セットのスコア"},
    "en": {"title": "Merge search", "x_title": "generation (0 = each input alone)", "generation": "generation",
           "candidate": "candidate", "best": "best so far", "score": "dev score"}}
# The report's verdict_code said again in the page's language (the report's own text is English).
VERDICT: dict[str, Text] = {
    "no_merge_found": {"ja": "探索では開発セットで {best} を上回るマージが見つからず、保存したモデルはその入力の重みです。マージは良くなっていません。",
                       "en": "The search found no merge better than {best} on the dev set; the saved model is that input's weights. The merge is not better."},
    "better": {"ja": "マージはテストセットで最良の入力（{best}）より良い結果です：{metric} の差 {diff:+.3f}［95%信頼区間 {lo:+.3f}〜{hi:+.3f}］、n={n}。",
               "en": "The merge is better than the best input ({best}) on the test set: {metric} {diff:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], n={n}."},
    "not_better": {"ja": "マージはテストセットで最良の入力（{best}）より良いとは言えません：{metric} の差 {diff:+.3f}［95%信頼区間 {lo:+.3f}〜{hi:+.3f}］、n={n}。差は誤差の範囲内{against}です。",
                   "en": "The merge is NOT better than the best input ({best}) on the test set: {metric} {diff:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], n={n}. The difference is within noise{against}."},
    "against": {"ja": "か、マージに不利", "en": " or against the merge"},
}
# A report merge's verdict (pipelines/merging/report_merge.py): the merge against the VLM alone.
REPORT_VERDICT: dict[str, Text] = {
    "no_merge_found": {"ja": "探索では開発セットで画像言語モデル（{vlm}）単独を上回るマージが見つからず、保存したモデルは画像言語モデルの重みそのものです。マージは良くなっていません。",
                       "en": "The search found no merge better than the VLM ({vlm}) alone on the dev set; the saved model is the VLM's weights. The merge is not better."},
    "better": {"ja": "マージはテストレポートで画像言語モデル（{vlm}）より良い結果です：{metric} の差 {diff:+.3f}［95%信頼区間 {lo:+.3f}〜{hi:+.3f}］、n={n}。",
               "en": "The merge is better than the VLM ({vlm}) on the test reports: {metric} {diff:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], n={n}."},
    "not_better": {"ja": "マージはテストレポートで画像言語モデル（{vlm}）より良いとは言えません：{metric} の差 {diff:+.3f}［95%信頼区間 {lo:+.3f}〜{hi:+.3f}］、n={n}。{tail}",
                   "en": "The merge is NOT better than the VLM ({vlm}) on the test reports: {metric} {diff:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], n={n}. {tail}"},
}
# The last sentence of a report merge that is not better: how the difference reads.
REPORT_TAIL: dict[str, Text] = {
    "noise": {"ja": "差は誤差の範囲内です。", "en": "The difference is within noise."},
    "noise_against": {"ja": "差は誤差の範囲内か、マージに不利です。", "en": "The difference is within noise or against the merge."},
    "worse": {"ja": "95%信頼区間がすべて 0 未満で、マージのほうが悪い結果です。",
              "en": "The whole 95% interval is below zero: the merge is worse."},
}
MSG: dict[str, Text] = {
    "started": {"ja": "マージ探索を開始しました（{out}）。", "en": "Merge search started ({out})."},
    "stopping": {"ja": "停止を依頼しました：現在の候補の採点後に止まります。", "en": "Stop requested: the search stops after the current candidate."},
    "no_out": {"ja": "まだマージを開始していません。", "en": "No merge started yet."},
    "status": {"ja": "状態：{status} · 候補 {done}/{total} · 最良（開発）{best}",
               "en": "Status: {status} · candidates {done}/{total} · best on dev {best}"},
    "estimate": {"ja": "見積もり：{c} 候補 × 開発 {q} 問 → 1候補 {s:.1f} 秒、探索 約{m:.1f} 分、テスト 約{tm:.1f} 分、メモリ 約{g:.2f} GiB",
                 "en": "Estimate: {c} candidates × {q} dev questions → {s:.1f} s per candidate, ~{m:.1f} min search, ~{tm:.1f} min test, memory ~{g:.2f} GiB"},
    "estimate_report": {"ja": "見積もり：{c} 候補 × 開発 {q} 件のレポート → 1候補 {s:.1f} 秒、探索 約{m:.1f} 分、テスト 約{tm:.1f} 分、メモリ 約{g:.2f} GiB",
                        "en": "Estimate: {c} candidates × {q} dev reports → {s:.1f} s per candidate, ~{m:.1f} min search, ~{tm:.1f} min test, memory ~{g:.2f} GiB"},
    "not_done": {"ja": "マージはまだ終わっていません。", "en": "The merge has not finished yet."},
    "compare": {"ja": "比較タブのチェックポイントで選択しました：{refs}。比較タブを開いて評価してください。",
                "en": "Selected in the Compare tab's checkpoints: {refs}. Open the Compare tab to evaluate them."},
    "chart_empty": {"ja": "まだ採点された候補はありません", "en": "No candidates scored yet"},
    "reports": {"ja": "レポート画面で画像言語モデルとマージのテスト評価を開きました。",
                "en": "The VLM's and the merge's test evaluations are open in the Reports view."},
    "not_report": {"ja": "このマージは試験問題のマージです。「比較タブで入力と並べて開く」で比べてください。",
                   "en": "This is an exam-question merge: compare it with \"Open beside its inputs in Compare\"."},
    "report_in_reports": {"ja": "画像レポートのマージはレポート画面で比べます。「レポート画面で開く」を使ってください。",
                          "en": "An image-report merge is compared in the Reports view: use \"Open in the Reports view\"."},
    "evals_missing": {"ja": "テスト評価がこのワークスペースの評価一覧にありません：{dirs}。別のワークスペースで実行したマージです。",
                      "en": "The test evaluations are not in this workspace's list of evaluations: {dirs}. The merge ran with another workspace."},
}
# A short gloss beside each method's name on the Japanese page (the name is what the CLI takes).
METHOD_JA = {"linear": "重みつき平均", "task_arithmetic": "タスク算術", "ties": "符号の多数決で統合",
             "dare_linear": "ランダムに間引いて平均", "dare_ties": "ランダムに間引いて符号の多数決",
             "jradievo": "JRadiEvo 方式：間引き率・各入力の刈り込みと重み・全体の倍率 λ"}
STATES: dict[str, Text] = {
    "queued": {"ja": "待機中", "en": "queued"}, "running": {"ja": "実行中", "en": "running"},
    "finished": {"ja": "完了", "en": "finished"}, "stopped": {"ja": "停止", "en": "stopped"},
    "failed": {"ja": "失敗", "en": "failed"}, "none": {"ja": "未開始", "en": "not started"}}


def field_labels(task: str = "exam") -> dict[str, Text]:
    """The form's labels by MergeConfig field, so an error names the field on the page."""
    labels = {"dev": L["dev"], "test": L["test"], "test_fraction": L["fraction"], "out": L["out"],
              "inputs": L["inputs"], "base": L["base"], "method": L["method"], "metric": L["metric"],
              "budget": L["budget"], "task": L["task"], "objective": L["objective"],
              "max_new_tokens": L["max_new_tokens"]}
    return {**labels, **REPORT_FIELDS} if task == "report" else labels
