"""The Train tab's words in Japanese and English: the form's field labels (keyed by TrainConfig
field, so an error about ``warmup_steps`` or ``--warmup-steps`` names the field on the page),
messages, table headers, and the memory estimate's parts."""
from __future__ import annotations

Text = dict[str, str]

FIELDS: dict[str, Text] = {
    "model": {"ja": "ベースモデル", "en": "Base model"},
    "data": {"ja": "学習データ（JSONL／データセット名）", "en": "Training data (JSONL or dataset name)"},
    "method": {"ja": "手法", "en": "Method"},
    "template": {"ja": "プロンプト形式", "en": "Prompt template"},
    "learning_rate": {"ja": "学習率", "en": "Learning rate"},
    "batch_size": {"ja": "バッチサイズ", "en": "Batch size"},
    "max_steps": {"ja": "最大ステップ数", "en": "Max steps"},
    "save_steps": {"ja": "チェックポイント保存ステップ（カンマ区切り）", "en": "Checkpoint steps (comma-separated)"},
    "lora_r": {"ja": "LoRA ランク（r）", "en": "LoRA r"},
    "lora_alpha": {"ja": "LoRA スケール（α）", "en": "LoRA alpha"},
    "lora_dropout": {"ja": "LoRA ドロップアウト率", "en": "LoRA dropout"},
    "target_modules": {"ja": "対象モジュール（カンマ区切り）", "en": "Target modules (comma-separated)"},
    "run_name": {"ja": "ラン名（空欄＝自動）", "en": "Run name (empty = automatic)"},
    "out": {"ja": "ランの保存先", "en": "Run folder"},
    "preset": {"ja": "プリセット", "en": "Preset"},
}
OTHER = {"ja": "その他の設定（JSON）の {name}", "en": "{name} in Other settings (JSON)"}
RUN_COLS = {"run": {"ja": "ラン", "en": "run"}, "status": {"ja": "状態", "en": "status"},
            "step": {"ja": "ステップ", "en": "step"}, "method": {"ja": "手法", "en": "method"},
            "model": {"ja": "モデル", "en": "model"}, "message": {"ja": "メッセージ", "en": "message"}}
CKPT_COLS = {"checkpoint": {"ja": "チェックポイント", "en": "checkpoint"}, "step": {"ja": "ステップ", "en": "step"},
             "hours": {"ja": "学習時間（時間）", "en": "hours"}, "path": {"ja": "場所", "en": "path"}}
CHART = {"step": {"ja": "ステップ", "en": "step"}, "loss": {"ja": "損失", "en": "loss"},
         "lr": {"ja": "学習率", "en": "learning rate"}}
MSG: dict[str, Text] = {
    "launched": {"ja": "学習を開始しました：{run}（{dir}）", "en": "Training launched: {run} ({dir})"},
    "contaminated": {"ja": "⚠ 評価に使う {file} の {total} 問のうち {n} 問（{ids}）が学習データに含まれています。これらの問題の得点は実力より高く出ます。",
                     "en": "⚠ {n} of the {total} questions of {file}, which the run will be evaluated on, are in its training data ({ids}); their scores will overstate the model."},
    "contaminated_fix": {"ja": "該当する記録を学習データから除くか、評価ではその問題を除いた得点も見てください（グラフタブ、または jmedlora contamination --train {train} --eval 評価フォルダ）。",
                         "en": "Remove those records from the training data, or read the score without those questions too (Charts tab, or jmedlora contamination --train {train} --eval EVAL_DIR)."},
    "bad_json": {"ja": "「その他の設定」が JSON のオブジェクトとして読めません（{where}）。",
                 "en": "'Other settings' is not valid JSON: {err}"},
    "json_at": {"ja": "{line} 行 {col} 文字目", "en": "line {line} column {col}"},
    "json_fix": {"ja": "{\"項目名\": 値, …} の形で書いてください。", "en": "Write it as {\"field\": value, …}."},
    "bad_number": {"ja": "「{field}」に数値を入力してください。", "en": "Enter a number for '{field}'."},
    "bad_steps": {"ja": "保存ステップは正の整数のカンマ区切りで入力してください（例：10,20）。",
                  "en": "Checkpoint steps must be positive whole numbers separated by commas (e.g. 10,20)."},
    "no_run": {"ja": "ランを選んでください。", "en": "Choose a run first."},
    "not_running": {"ja": "このランは実行中ではありません。", "en": "This run is not running."},
    "stopping": {"ja": "停止を要求しました（再開用の状態を保存してから終了します）。",
                 "en": "Stop requested (the run saves a resume point, then exits)."},
    "resumed": {"ja": "再開しました：{run}（{dir}）", "en": "Resumed: {run} ({dir})"},
    "training": {"ja": "学習", "en": "Training"},
    "no_metrics": {"ja": "まだ記録がありません（最初のステップの後に表示されます）。",
                   "en": "No metrics yet (they appear after the first step)."},
    "command": {"ja": "同じ学習をターミナルで：", "en": "The same run from a terminal:"},
    "est_model": {"ja": "{name}：{params:.2f} B パラメータ、{method}、学習するパラメータ {trainable:.1f} M",
                  "en": "{name}: {params:.2f} B parameters, {method}, {trainable:.1f} M trainable"},
    "est_memory": {"ja": "{where} の1台あたりのメモリ：約 {total:.1f} GB — {verdict}",
                   "en": "Memory per device on {where}: about {total:.1f} GB — {verdict}."},
    "est_fits": {"ja": "収まります（{gb:.1f} GB の余裕）", "en": "fits ({gb:.1f} GB to spare)"},
    "est_short": {"ja": "収まりません（{gb:.1f} GB 不足）。試すこと：{tips}", "en": "does NOT fit ({gb:.1f} GB short): try {tips}"},
    "est_time": {"ja": "時間：1ステップ約 {s:.1f} 秒、{steps} ステップで約 {h:.1f} 時間。",
                 "en": "Time: about {s:.1f} s per step, {h:.1f} h for {steps} steps."},
    "est_note": {"ja": "注：", "en": "Note: "},
    "gpu": {"ja": "{count} × {name}（各 {gb:.0f} GB）", "en": "{count} × {name} ({gb:.0f} GB each)"},
    "cpu": {"ja": "CPU {name}（RAM {gb:.0f} GB）", "en": "CPU {name} ({gb:.0f} GB RAM)"},
}
TIPS: dict[str, Text] = {
    "qlora": {"ja": "QLoRA", "en": "qlora"},
    "checkpointing": {"ja": "勾配チェックポイント（gradient_checkpointing）", "en": "gradient checkpointing"},
    "micro": {"ja": "より小さい micro_batch_size", "en": "a smaller micro_batch_size"},
    "shorter": {"ja": "より短い系列長", "en": "shorter sequences"},
    "gpu": {"ja": "メモリの大きいGPU", "en": "a GPU with more memory"},
}
# The estimate's memory parts (pipelines.training.estimate keys) and its notes, by their start.
MEMORY: dict[str, str] = {
    "base weights (4-bit NF4)": "ベースの重み（4ビット NF4）", "embeddings, norms (fp32)": "埋め込み・正規化層（fp32）",
    "base weights (bf16)": "ベースの重み（bf16）", "base weights (fp32)": "ベースの重み（fp32）",
    "weights (fp32 master)": "重み（fp32 マスター）", "trainable: weights+grads+AdamW": "学習対象：重み＋勾配＋AdamW",
    "activations": "活性化", "logits + their gradient": "ロジットとその勾配", "runtime overhead": "実行時のオーバーヘッド",
}
NOTES: dict[str, str] = {
    "time assumes examples fill 60%": "時間は各例が最大長の60%を占めると仮定しています。データを指定するとより正確になります。",
    "processes asked for but": "指定したプロセス数が GPU の数より多くなっています。",
}
