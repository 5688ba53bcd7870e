"""Train tab: pick a preset (the paper's Table 3 and CPU-sized ones), edit any field, see the
estimate and the equivalent command, launch; follow runs (loss/lr chart, tokens/s, ETA, log
tail, checkpoints); stop and resume.

The UI never imports the training loop: ``pipelines.train.launch`` starts the run as its own
process writing ``RUN/metrics.jsonl`` and ``RUN/train.log``, which this tab tails."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import threading
from pathlib import Path

import gradio as gr
import pandas as pd

from components import metric_chart
from components.run_monitor import format_seconds, progress_html, tail
from pipelines.errors import UserError
from workbench import train_runs as runs_view
from workbench.i18n import Labels
from workbench.state import AppState

L = {
    "missing": {"ja": "### 学習\nこのタブは学習パイプライン（pipelines.train）を使いますが、まだインストールされていません。",
                "en": "### Train\nThis tab runs the training pipeline (pipelines.train), which is not installed yet."},
    "intro": {"ja": "### 学習（LoRA / QLoRA / 継続事前学習）\nプリセットを選び、必要な項目を編集して開始します。学習は別プロセスで動き、このページを閉じても止まりません。",
              "en": "### Train (LoRA / QLoRA / continual pretraining)\nPick a preset, edit any field, launch. The run is its own process: closing this page does not stop it."},
    "preset": {"ja": "プリセット", "en": "Preset"},
    "model": {"ja": "ベースモデル", "en": "Base model"},
    "data": {"ja": "学習データ（JSONL／データセット名）", "en": "Training data (JSONL or dataset name)"},
    "method": {"ja": "手法", "en": "Method"},
    "template": {"ja": "プロンプト形式", "en": "Prompt template"},
    "lr": {"ja": "学習率", "en": "Learning rate"},
    "batch": {"ja": "バッチサイズ", "en": "Batch size"},
    "steps": {"ja": "最大ステップ数", "en": "Max steps"},
    "save": {"ja": "チェックポイント保存ステップ（カンマ区切り）", "en": "Checkpoint steps (comma-separated)"},
    "r": {"ja": "LoRA r", "en": "LoRA r"},
    "alpha": {"ja": "LoRA alpha", "en": "LoRA alpha"},
    "dropout": {"ja": "LoRA dropout", "en": "LoRA dropout"},
    "targets": {"ja": "対象モジュール（カンマ区切り）", "en": "Target modules (comma-separated)"},
    "run_name": {"ja": "ラン名（空欄＝自動）", "en": "Run name (empty = automatic)"},
    "other": {"ja": "その他の設定（JSON、TrainConfig の任意の項目）", "en": "Other settings (JSON: any TrainConfig field)"},
    "estimate": {"ja": "メモリ・時間の見積もり", "en": "Estimate memory and time"},
    "launch": {"ja": "▶ 学習を開始", "en": "▶ Launch training"},
    "command": {"ja": "同じ学習を行うコマンド", "en": "Equivalent command"},
    "runs": {"ja": "学習ラン", "en": "Training runs"},
    "run": {"ja": "表示するラン", "en": "Run to follow"},
    "stop": {"ja": "■ 停止（再開可能な状態を保存）", "en": "■ Stop (saves a resume point)"},
    "resume": {"ja": "↻ 再開", "en": "↻ Resume"},
    "log": {"ja": "ログ（末尾）", "en": "Log (tail)"},
    "ckpts": {"ja": "チェックポイント（比較タブで評価できます）", "en": "Checkpoints (evaluate them in the Compare tab)"},
}
MSG = {
    "launched": {"ja": "学習を開始しました：{run}（{dir}）", "en": "Training launched: {run} ({dir})"},
    "bad_json": {"ja": "「その他の設定」が JSON として読めません：{err}", "en": "'Other settings' is not valid JSON: {err}"},
    "bad_number": {"ja": "{field} に数値を入力してください。", "en": "Enter a number for {field}."},
    "bad_steps": {"ja": "保存ステップは正の整数のカンマ区切りで入力してください（例：10,20）。",
                  "en": "Checkpoint steps must be positive whole numbers separated by commas (e.g. 10,20)."},
    "no_run": {"ja": "ランを選んでください。", "en": "Choose a run first."},
    "stopping": {"ja": "停止を要求しました（再開用の状態を保存してから終了します）。",
                 "en": "Stop requested (the run saves a resume point, then exits)."},
    "resumed": {"ja": "再開しました：{run}（{dir}）", "en": "Resumed: {run} ({dir})"},
    "no_estimate": {"ja": "見積もり機能（pipelines.train_estimate）はまだありません。",
                    "en": "The estimator (pipelines.train_estimate) is not installed yet."},
    "training": {"ja": "学習", "en": "Training"},
}
FORM = ["model", "data", "method", "template", "learning_rate", "batch_size", "max_steps", "save_steps",
        "lora_r", "lora_alpha", "lora_dropout", "target_modules", "run_name"]
CKPT_COLS = ["checkpoint", "step", "hours", "path"]
HIDDEN = {"preset", "out", "workspace"} | set(FORM)


def preset_values(preset: str | None) -> tuple[list, str, str]:
    """(form values, other-settings JSON, description) of a preset on top of TrainConfig defaults."""
    from pipelines import train
    cfg = train.make_config(preset or None)
    values = [getattr(cfg, f) for f in FORM]
    values[FORM.index("save_steps")] = ",".join(map(str, cfg.save_steps))
    values[FORM.index("target_modules")] = ",".join(cfg.target_modules)
    other = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in HIDDEN}
    desc = ""
    if preset:
        p = train.load_preset(preset)
        notes = "\n".join(f"- **{k}**: {v}" for k, v in (p.get("notes") or {}).items())
        desc = f"{p.get('description', '')}\n\n{notes}"
    return values, json.dumps(other, ensure_ascii=False, indent=1), desc


def config_from_form(preset, values: list, other_json: str, lang: str, workspace: str):
    """A TrainConfig from the form (raises UserError with a message in ``lang``)."""
    from pipelines import train
    fields = dict(zip(FORM, values))
    try:
        other = json.loads(other_json or "{}")
        if not isinstance(other, dict):
            raise ValueError("expected an object {field: value}")
    except ValueError as exc:
        raise UserError(MSG["bad_json"][lang].format(err=exc)) from None
    for name in ("learning_rate", "batch_size", "max_steps", "lora_r", "lora_alpha", "lora_dropout"):
        if fields[name] is None:
            raise UserError(MSG["bad_number"][lang].format(field=name))
    try:
        fields["save_steps"] = [int(s) for s in str(fields["save_steps"] or "").replace(" ", "").split(",") if s]
    except ValueError:
        raise UserError(MSG["bad_steps"][lang]) from None
    if any(s < 1 for s in fields["save_steps"]):
        raise UserError(MSG["bad_steps"][lang])
    fields["target_modules"] = [m.strip() for m in str(fields["target_modules"] or "").split(",") if m.strip()]
    for name in ("batch_size", "max_steps", "lora_r", "lora_alpha"):
        fields[name] = int(fields[name])
    overrides = {**other, **fields, "workspace": workspace}
    config = train.make_config(preset or None, **overrides)
    config.validate()
    return config


def runs_frame(ws) -> pd.DataFrame:
    rows = [{"run": r["run_name"], "status": r["status"], "step": f"{r.get('step', 0)}/{r.get('max_steps') or '?'}",
             "method": r.get("method"), "model": r.get("model"), "message": r.get("message") or ""}
            for r in runs_view.list_runs(ws)]
    return pd.DataFrame(rows, columns=["run", "status", "step", "method", "model", "message"])


def display_name(run_dir: str) -> str:
    """The name the user gave the run (its directory name when it has none)."""
    from pipelines import train_runs
    cfg = train_runs.read_json(Path(run_dir) / "config.json").get("config") or {}
    return cfg.get("run_name") or Path(run_dir).name


def monitor(run_dir: str | None, lang: str):
    """(progress html, loss/lr figure, log tail, checkpoints frame) of one run."""
    from pipelines import train_runs
    if not run_dir:
        return "", metric_chart.empty_figure(MSG["no_run"][lang]), "", pd.DataFrame(columns=CKPT_COLS)
    st = train_runs.run_status(run_dir)
    df = runs_view.read_metrics(run_dir)
    last = df.iloc[-1].to_dict() if len(df) else {}
    detail = ""
    if last:
        detail = f"· loss {last.get('loss', float('nan')):.4f} · {last.get('tokens_per_s', 0):.0f} tok/s"
        if st.get("status") == "running":       # a stopped or finished run has no time left to estimate
            detail += f" · ETA {format_seconds(last.get('eta_s'))}"
    error = st.get("message", "") if st.get("status") == "failed" else ""
    name = display_name(run_dir)
    html = progress_html(f"{MSG['training'][lang]}: {name}", int(st.get("step") or 0),
                         int(st.get("max_steps") or 0) or None, status=st.get("status", "?"),
                         elapsed=last.get("elapsed_s"), detail=detail, error=error)
    fig = metric_chart.run_curves(df, title=name, empty_message="…")
    ckpts = pd.DataFrame([{"checkpoint": c.get("name"), "step": c.get("step"),
                           "hours": round(c.get("train_hours") or 0, 4), "path": c.get("path")}
                          for c in train_runs.list_checkpoints(run_dir)], columns=CKPT_COLS)
    return html, fig, tail(Path(run_dir) / "train.log", 30), ckpts


def create_train_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    if importlib.util.find_spec("pipelines.train") is None:
        t.make(gr.Markdown, L["missing"], elem_id="train-missing")
        return {}
    from pipelines import train

    ws = state.workspace
    first = "cpu-tiny-lora" if "cpu-tiny-lora" in train.available_presets() else None
    values, other, desc = preset_values(first)
    v = dict(zip(FORM, values))
    t.make(gr.Markdown, L["intro"])
    with gr.Row():
        preset = t.make(gr.Dropdown, L["preset"], choices=train.available_presets(), value=first, scale=1,
                        elem_id="train-preset")
        with gr.Column(scale=3):
            description = gr.Markdown(desc, elem_id="train-preset-desc")
    with gr.Row():
        model = t.make(gr.Dropdown, L["model"], choices=[c for c in state.model_choices()], value=v["model"],
                       allow_custom_value=True, elem_id="train-model")
        data = t.make(gr.Textbox, L["data"], value=v["data"], elem_id="train-data")
        method = t.make(gr.Dropdown, L["method"], choices=list(train.METHODS), value=v["method"])
        template = t.make(gr.Dropdown, L["template"], choices=["ja", "en", "chat", "ja_exam"], value=v["template"],
                          allow_custom_value=True)
    with gr.Row():
        lr = t.make(gr.Number, L["lr"], value=v["learning_rate"], elem_id="train-lr")
        batch = t.make(gr.Number, L["batch"], value=v["batch_size"], precision=0, elem_id="train-batch")
        steps = t.make(gr.Number, L["steps"], value=v["max_steps"], precision=0, elem_id="train-steps")
        save = t.make(gr.Textbox, L["save"], value=v["save_steps"], elem_id="train-save")
    with gr.Row():
        r = t.make(gr.Number, L["r"], value=v["lora_r"], precision=0)
        alpha = t.make(gr.Number, L["alpha"], value=v["lora_alpha"], precision=0)
        dropout = t.make(gr.Number, L["dropout"], value=v["lora_dropout"])
        targets = t.make(gr.Textbox, L["targets"], value=v["target_modules"])
        run_name = t.make(gr.Textbox, L["run_name"], value=v["run_name"], elem_id="train-run-name")
    with t.make(gr.Accordion, L["other"], open=False):
        other_box = gr.Code(other, language="json", elem_id="train-other")
    with gr.Row():
        estimate_btn = t.make(gr.Button, L["estimate"])
        launch_btn = t.make(gr.Button, L["launch"], variant="primary", elem_id="train-launch")
    message = gr.HTML(elem_id="train-message")
    command = t.make(gr.Code, L["command"], language="shell", elem_id="train-command")

    runs_table = t.make(gr.Dataframe, L["runs"], value=runs_frame(ws), interactive=False, elem_id="train-runs")
    with gr.Row():
        run_sel = t.make(gr.Dropdown, L["run"], choices=runs_view.run_choices(ws), scale=3, elem_id="train-run")
        stop_btn = t.make(gr.Button, L["stop"], variant="stop", scale=1, elem_id="train-stop")
        resume_btn = t.make(gr.Button, L["resume"], scale=1, elem_id="train-resume")
    progress = gr.HTML(elem_id="train-progress")
    curves = gr.Plot(elem_id="train-curves", show_label=False)
    with gr.Row():
        log = t.make(gr.Textbox, L["log"], lines=10, max_lines=10, interactive=False, scale=3, elem_id="train-log")
        ckpts = t.make(gr.Dataframe, L["ckpts"], interactive=False, scale=2, elem_id="train-ckpts")
    timer = gr.Timer(2.0)

    form = [model, data, method, template, lr, batch, steps, save, r, alpha, dropout, targets, run_name]

    # -- wiring ----------------------------------------------------------------------
    def on_preset(name):
        vals, other_json, text = preset_values(name)
        return [*vals, other_json, text]

    preset.change(on_preset, [preset], [*form, other_box, description])

    def from_notice(kind, text):
        from workbench.tab_compare import notice
        return notice(kind, text)

    def do_launch(preset_, *args):
        *vals, other_json, lang_ = args
        try:
            config = config_from_form(preset_, vals, other_json, lang_, str(ws.root))
            launched = train.launch(config, workspace=ws)
        except UserError as exc:
            return (from_notice("error", str(exc).replace("\n  Fix: ", "\n→ ")), gr.update(), gr.update(),
                    gr.update())
        return (from_notice("ok", MSG["launched"][lang_].format(run=display_name(launched.run_dir),
                                                                 dir=launched.run_dir)), launched.cli,
                gr.update(choices=runs_view.run_choices(ws), value=launched.run_dir), runs_frame(ws))

    launch_btn.click(do_launch, [preset, *form, other_box, lang], [message, command, run_sel, runs_table])

    def do_estimate(preset_, *args):
        *vals, other_json, lang_ = args
        try:
            config = config_from_form(preset_, vals, other_json, lang_, str(ws.root))
        except UserError as exc:
            return from_notice("error", str(exc)), gr.update()
        if importlib.util.find_spec("pipelines.train_estimate") is None:
            return from_notice("info", MSG["no_estimate"][lang_]), train.equivalent_cli(config)
        from pipelines.train_estimate import estimate_config
        try:
            summary = estimate_config(config, ws=ws).summary()
        except UserError as exc:
            return from_notice("error", str(exc)), train.equivalent_cli(config)
        return from_notice("info", summary), train.equivalent_cli(config)

    estimate_btn.click(do_estimate, [preset, *form, other_box, lang], [message, command])

    def tick(run_dir, lang_):
        return (runs_frame(ws), gr.update(choices=runs_view.run_choices(ws)), *monitor(run_dir, lang_))

    timer.tick(tick, [run_sel, lang], [runs_table, run_sel, progress, curves, log, ckpts])
    run_sel.change(lambda d, lang_: monitor(d, lang_), [run_sel, lang], [progress, curves, log, ckpts])

    def do_stop(run_dir, lang_):
        if not run_dir:
            return from_notice("error", MSG["no_run"][lang_])
        from pipelines import train_runs
        # stop_run waits for the run to save and exit: not in the request.
        threading.Thread(target=train_runs.stop_run, args=(run_dir,), daemon=True).start()
        return from_notice("info", MSG["stopping"][lang_])

    def do_resume(run_dir, lang_):
        if not run_dir:
            return from_notice("error", MSG["no_run"][lang_])
        try:
            launched = train.resume(run_dir)
        except UserError as exc:
            return from_notice("error", str(exc).replace("\n  Fix: ", "\n→ "))
        return from_notice("ok", MSG["resumed"][lang_].format(run=display_name(launched.run_dir), dir=launched.run_dir))

    stop_btn.click(do_stop, [run_sel, lang], [message])
    resume_btn.click(do_resume, [run_sel, lang], [message])
    return {}
