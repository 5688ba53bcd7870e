"""Train tab: pick a preset (the paper's Table 3 and CPU-sized ones), edit any field, see the
estimate and the equivalent command, launch (on several GPUs or machines: the Distributed section,
``workbench.train_distributed``); follow runs (loss/lr chart, tokens/s, ETA, log
tail, checkpoints); stop and resume. Layout and wiring only: the handlers are
``workbench.train_handlers``."""
from __future__ import annotations

import gradio as gr

from pipelines.training import config as train_config
from workbench import train_distributed as dist
from workbench import train_handlers as h
from workbench import train_runs as runs_view
from workbench.i18n import Labels
from workbench.state import AppState
from workbench.train_text import FIELDS
from workbench.wiring import bind

L = {
    "intro": {"ja": "### 学習（LoRA / QLoRA / 継続事前学習）\nプリセットを選び、必要な項目を編集して開始します。学習は別プロセスで動き、このページを閉じても止まりません。",
              "en": "### Train (LoRA / QLoRA / continual pretraining)\nPick a preset, edit any field, launch. The run is its own process: closing this page does not stop it."},
    "other": {"ja": "その他の設定（JSON、学習設定の任意の項目）", "en": "Other settings (JSON: any training setting)"},
    "estimate": {"ja": "メモリ・時間の見積もり", "en": "Estimate memory and time"},
    "launch": {"ja": "▶ 学習を開始", "en": "▶ Launch training"},
    "command": {"ja": "同じ学習を行うコマンド", "en": "Equivalent command"},
    "runs": {"ja": "学習ラン", "en": "Training runs"},
    "run": {"ja": "表示するラン", "en": "Run to follow"},
    "stop": {"ja": "■ 停止（再開可能な状態を保存）", "en": "■ Stop (saves a resume point)"},
    "resume": {"ja": "↻ 再開", "en": "↻ Resume"},
    "log": {"ja": "**ログ**（末尾、最新の行が下）", "en": "**Log** (tail, newest at the bottom)"},
    "ckpts": {"ja": "チェックポイント（比較タブで評価できます）", "en": "Checkpoints (evaluate them in the Compare tab)"},
}
METHODS = {"lora": "LoRA", "qlora": "QLoRA", "cpt": {"ja": "継続事前学習（CPT）", "en": "continual pretraining (CPT)"}}
TEMPLATES = ("ja", "en", "chat", "ja_exam")


def method_choices(lang: str) -> list[tuple[str, str]]:
    return [(v if isinstance(v, str) else v[lang], k) for k, v in METHODS.items() if k in train_config.METHODS]


def create_train_tab(state: AppState, t: Labels, lang: gr.State) -> dict:
    ws, lg = state.workspace, t.lang
    presets = train_config.available_presets()
    first = "cpu-tiny-lora" if "cpu-tiny-lora" in presets else None
    values, other = h.preset_values(first)
    v = dict(zip(h.FORM, values))
    t.make(gr.Markdown, L["intro"])
    with gr.Row():
        preset = t.make(gr.Dropdown, FIELDS["preset"], choices=presets, value=first, scale=1, elem_id="train-preset")
        with gr.Column(scale=3):
            description = gr.Markdown(h.preset_text(first, lg), elem_id="train-preset-desc")
    with gr.Row():
        model = t.make(gr.Dropdown, FIELDS["model"], choices=state.model_choices(), value=v["model"],
                       allow_custom_value=True, elem_id="train-model")
        data = t.make(gr.Textbox, FIELDS["data"], value=v["data"], elem_id="train-data")
        method = t.make(gr.Dropdown, FIELDS["method"], choices=method_choices(lg), value=v["method"],
                        elem_id="train-method")
        template = t.make(gr.Dropdown, FIELDS["template"], choices=list(TEMPLATES), value=v["template"],
                          allow_custom_value=True)
    with gr.Row():
        lr = t.make(gr.Number, FIELDS["learning_rate"], value=v["learning_rate"], elem_id="train-lr")
        batch = t.make(gr.Number, FIELDS["batch_size"], value=v["batch_size"], precision=0, elem_id="train-batch")
        steps = t.make(gr.Number, FIELDS["max_steps"], value=v["max_steps"], precision=0, elem_id="train-steps")
        save = t.make(gr.Textbox, FIELDS["save_steps"], value=v["save_steps"], elem_id="train-save")
    with gr.Row():
        r = t.make(gr.Number, FIELDS["lora_r"], value=v["lora_r"], precision=0)
        alpha = t.make(gr.Number, FIELDS["lora_alpha"], value=v["lora_alpha"], precision=0)
        dropout = t.make(gr.Number, FIELDS["lora_dropout"], value=v["lora_dropout"])
        targets = t.make(gr.Textbox, FIELDS["target_modules"], value=v["target_modules"])
        run_name = t.make(gr.Textbox, FIELDS["run_name"], value=v["run_name"], elem_id="train-run-name")
    with t.make(gr.Accordion, L["other"], open=False):
        other_box = gr.Code(other, language="json", elem_id="train-other")
    with t.make(gr.Accordion, dist.L["title"], open=False):
        with gr.Row():
            strategy = t.make(gr.Dropdown, dist.L["strategy"], choices=dist.strategy_choices(lg), value="none",
                              elem_id="train-dist-strategy")
            processes = t.make(gr.Number, dist.L["processes"], value=2, precision=0, elem_id="train-dist-processes")
            machines = t.make(gr.Number, dist.L["machines"], value=1, precision=0, elem_id="train-dist-machines")
            rank = t.make(gr.Number, dist.L["rank"], value=0, precision=0, elem_id="train-dist-rank")
            address = t.make(gr.Textbox, dist.L["address"], elem_id="train-dist-address")
            port = t.make(gr.Number, dist.L["port"], value=29500, precision=0, elem_id="train-dist-port")
        write_btn = t.make(gr.Button, dist.L["write"], elem_id="train-dist-write")
        dist_message = gr.HTML(elem_id="train-dist-message")
        dist_file = t.make(gr.Code, dist.L["file"], language="yaml", visible=False, elem_id="train-dist-file")
    with gr.Row():
        estimate_btn = t.make(gr.Button, L["estimate"], elem_id="train-estimate")
        launch_btn = t.make(gr.Button, L["launch"], variant="primary", elem_id="train-launch")
    message = gr.HTML(elem_id="train-message")
    # Hidden until an estimate or a launch puts a command in it (h.command_box).
    command = t.make(gr.Code, L["command"], language="shell", visible=False, elem_id="train-command")

    runs_table = t.make(gr.Dataframe, L["runs"], value=h.runs_frame(ws, lg), interactive=False, elem_id="train-runs")
    with gr.Row():
        run_sel = t.make(gr.Dropdown, L["run"], choices=runs_view.run_choices(ws, lg), scale=3, elem_id="train-run")
        stop_btn = t.make(gr.Button, L["stop"], variant="stop", scale=1, interactive=False, elem_id="train-stop")
        resume_btn = t.make(gr.Button, L["resume"], scale=1, elem_id="train-resume")
    progress = gr.HTML(elem_id="train-progress")
    curves = gr.Plot(elem_id="train-curves", show_label=False)
    with gr.Row():
        with gr.Column(scale=3):
            t.make(gr.Markdown, L["log"])
            log = gr.HTML(elem_id="train-log")
        ckpts = t.make(gr.Dataframe, L["ckpts"], interactive=False, scale=2, elem_id="train-ckpts")
    timer = gr.Timer(2.0)

    # -- wiring ------------------------------------------------------------------------------
    form = [model, data, method, template, lr, batch, steps, save, r, alpha, dropout, targets, run_name]
    preset.change(h.on_preset, [preset, lang], [*form, other_box, description])
    launch_btn.click(bind(h.launch, state), [preset, *form, other_box, lang],
                     [message, command, run_sel, runs_table, stop_btn])
    estimate_btn.click(bind(h.estimate, state), [preset, *form, other_box, lang], [message, command])
    write_btn.click(bind(dist.write, state), [strategy, processes, machines, rank, address, port, model, method,
                                              other_box, lang], [dist_message, dist_file, other_box])
    monitored = [progress, curves, log, ckpts, stop_btn]
    timer.tick(bind(h.tick, state), [run_sel, lang], [runs_table, run_sel, *monitored], show_progress="hidden")
    run_sel.change(h.monitor, [run_sel, lang], monitored)
    stop_btn.click(bind(h.stop, state), [run_sel, lang], [message])
    resume_btn.click(bind(h.resume, state), [run_sel, lang], [message])

    def rerender(lang_, preset_, run_dir):
        """Everything on the tab that holds words, in the new language."""
        return (gr.update(choices=method_choices(lang_)), gr.update(choices=dist.strategy_choices(lang_)),
                h.preset_text(preset_, lang_), h.runs_frame(ws, lang_),
                gr.update(choices=runs_view.run_choices(ws, lang_)), *h.monitor(run_dir, lang_))

    return {"rerender": (rerender, [lang, preset, run_sel],
                         [method, strategy, description, runs_table, run_sel, *monitored])}
