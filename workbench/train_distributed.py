"""The Train tab's "Distributed / 分散学習" section: strategy, processes, machines, this machine's
rank, the main machine's address and port; its labels in both languages and its one handler.

"Write" writes the accelerate config file (``pipelines.training.distributed``: the file, its checks
and the commands are all there), shows it with the command each machine runs, and puts it into the
run's settings (``accelerate_config`` and ``num_processes`` in "Other settings"), so the next launch,
estimate and equivalent command use it. Choosing "none" takes it out again."""
from __future__ import annotations

import json

import gradio as gr

from components import notice
from pipelines.core.errors import UserError
from pipelines.training import distributed
from workbench.field_errors import error_html
from workbench.state import AppState
from workbench.train_handlers import field_labels
from workbench.train_text import MSG as TRAIN_MSG

L = {
    "title": {"ja": "分散学習（複数 GPU・複数マシン）", "en": "Distributed (several GPUs or machines)"},
    "strategy": {"ja": "方式", "en": "Strategy"},
    "processes": {"ja": "プロセス数（全マシンの合計、GPU 1 枚に 1 つ）", "en": "Processes (all machines, one per GPU)"},
    "machines": {"ja": "マシン数", "en": "Machines"},
    "rank": {"ja": "このマシンの番号（0＝主マシン）", "en": "This machine's rank (0 = main)"},
    "address": {"ja": "主マシンのアドレス（複数マシン）", "en": "Main machine's address (several machines)"},
    "port": {"ja": "主マシンのポート", "en": "Main machine's port"},
    "write": {"ja": "設定ファイルを書き出して次の学習に使う", "en": "Write the config file and use it for the next run"},
    "file": {"ja": "accelerate の設定ファイル", "en": "accelerate config file"},
}
MSG = {
    "written": {"ja": "{path} に書き出し、「その他の設定」の accelerate_config と num_processes に入れました。",
                "en": "Wrote {path} and put it into Other settings (accelerate_config, num_processes)."},
    "cleared": {"ja": "「その他の設定」から accelerate_config を外しました。",
                "en": "Removed accelerate_config from Other settings."},
    "start": {"ja": "主マシン（番号 0）で「学習を開始」を押すか、次を実行：",
              "en": "On the main machine (rank 0) press Launch, or run:"},
    "join": {"ja": "学習の開始後、他の各マシンでリポジトリのフォルダから実行（ランのフォルダは全マシンの共有フォルダに置く）：",
             "en": "Once the run has started, on each other machine, from the repository folder (the run folder on a "
                   "folder all machines share):"},
}
STRATEGIES = {"none": {"ja": "使わない", "en": "none"},
              "ddp": {"ja": "DDP（各 GPU にモデル全体）", "en": "DDP (a whole model per GPU)"},
              "fsdp": {"ja": "FSDP（重みを分割）", "en": "FSDP (weights sharded)"},
              "deepspeed-zero3": {"ja": "DeepSpeed ZeRO-3（重みを分割、deepspeed が必要）",
                                  "en": "DeepSpeed ZeRO-3 (weights sharded, needs deepspeed)"}}
# The section's fields, for errors that name one (``field`` of a ``dist.*`` UserError).
FIELDS = {"strategy": L["strategy"], "num_processes": L["processes"], "num_machines": L["machines"],
          "machine_rank": L["rank"], "main_process_ip": L["address"], "main_process_port": L["port"]}


def strategy_choices(lang: str) -> list[tuple[str, str]]:
    return [(text[lang], key) for key, text in STRATEGIES.items()]


def _other_settings(other_json: str, lang: str) -> dict:
    try:
        other = json.loads(other_json or "{}")
    except ValueError as exc:
        raise UserError(TRAIN_MSG["bad_json"][lang].format(err=exc, where=f"{exc.lineno}:{exc.colno}"),
                        TRAIN_MSG["json_fix"][lang]) from None
    if not isinstance(other, dict):
        raise UserError(TRAIN_MSG["bad_json"][lang].format(err="{…}", where="{…}"), TRAIN_MSG["json_fix"][lang])
    return other


def write(state: AppState, strategy, processes, machines, rank, address, port, model, method, other_json, lang: str):
    """(message, file box, other settings JSON): the file written and the run's settings pointing at it."""
    labels = {**field_labels(lang), **FIELDS}
    try:
        other = _other_settings(other_json, lang)
        if strategy in (None, "", "none"):
            other.pop("accelerate_config", None)
            return (notice.notice("info", MSG["cleared"][lang]), gr.update(value="", visible=False),
                    json.dumps(other, ensure_ascii=False, indent=1))
        import torch
        use_cpu = strategy == "ddp" and not torch.cuda.is_available()     # fsdp / ZeRO-3 files are for GPUs
        dc = distributed.DistributedConfig(
            strategy=strategy, num_processes=int(processes or 0), num_machines=int(machines or 0),
            machine_rank=int(rank or 0), main_process_ip=(address or "").strip(), main_process_port=int(port or 0),
            mixed_precision=distributed.mixed_precision_for(other.get("precision", "auto"), use_cpu),
            use_cpu=use_cpu, model=model or "", workspace=str(state.workspace.root))
        path = distributed.write_config(dc, ws=state.workspace, method=method)
    except UserError as exc:
        return error_html(exc, labels, lang), gr.update(), gr.update()
    other.update(accelerate_config=str(path), num_processes=dc.num_processes)
    lines = [f"# {MSG['start'][lang]}", f"jmedlora train ... --accelerate-config {path} --num-processes {dc.num_processes}"]
    joins = distributed.join_commands(distributed.read_config(path), "RUN_DIR")
    if joins:
        lines += [f"# {MSG['join'][lang]}", *joins]
    shown = path.read_text(encoding="utf-8") + "\n" + "\n".join(lines)
    return (notice.notice("ok", MSG["written"][lang].format(path=path)), gr.update(value=shown, visible=True),
            json.dumps(other, ensure_ascii=False, indent=1))
