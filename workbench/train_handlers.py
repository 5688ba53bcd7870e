"""The Train tab's handlers: plain functions of the app state and the form values, wired to the
widgets in ``tab_train`` with ``functools.partial`` and tested without a browser.

The UI never imports the training loop: ``pipelines.training.launch.launch`` starts the run as its own
process writing ``RUN/metrics.jsonl`` and ``RUN/train.log``, which ``monitor`` reads."""
from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import gradio as gr
import pandas as pd

from components import metric_chart, notice
from components.run_monitor import log_html, progress_html, status_word, tail
from pipelines.core import page_paths
from pipelines.core.errors import UserError
from pipelines.training import config as train_config
from pipelines.training import launch as train
from pipelines.training import runs as train_runs
from workbench import train_runs as runs_view
from workbench import users
from workbench.field_errors import error_html, job_message
from workbench.state import AppState
from workbench.train_text import CHART, CKPT_COLS, FIELDS, MEMORY, MSG, NOTES, OTHER, RUN_COLS, TIPS

FORM = ["model", "data", "method", "template", "learning_rate", "batch_size", "max_steps", "save_steps",
        "lora_r", "lora_alpha", "lora_dropout", "target_modules", "run_name"]
HIDDEN = {"preset", "out", "workspace"} | set(FORM)
LOG_LINES = 200


def field_labels(lang: str) -> dict[str, dict[str, str]]:
    """Labels for errors: the form's fields, and every other TrainConfig field as it appears in the JSON box."""
    other = {f.name: {lg: OTHER[lg].format(name=f.name) for lg in OTHER}
             for f in dataclasses.fields(train_config.TrainConfig)}
    return {**other, **FIELDS}


def fail(exc: UserError, lang: str) -> str:
    return error_html(exc, field_labels(lang), lang)


def header(cols: dict, lang: str) -> list[str]:
    return [t[lang] for t in cols.values()]


def preset_text(preset: str | None, lang: str) -> str:
    """A preset's description, its command, and its per-field notes under the fields' labels."""
    if not preset:
        return ""
    p = train_config.load_preset(preset)
    labels = field_labels(lang)

    def text(v) -> str:          # shipped presets give {ja, en}; a user's own may give one plain string
        return v.get(lang, "") if isinstance(v, dict) else str(v or "")
    notes = "\n".join(f"- **{labels[k][lang]}**: {text(v)}" if k in FIELDS else f"- `{k}`: {text(v)}"
                      for k, v in (p.get("notes") or {}).items())
    command = f"\n\n{MSG['command'][lang]} `{p['command']}`" if p.get("command") else ""
    return f"{text(p.get('description'))}{command}\n\n{notes}"


def preset_values(preset: str | None) -> tuple[list, str]:
    """(form values, other-settings JSON) of a preset on top of TrainConfig defaults."""
    cfg = train_config.make_config(preset or None)
    values = [getattr(cfg, f) for f in FORM]
    values[FORM.index("save_steps")] = ",".join(map(str, cfg.save_steps))
    values[FORM.index("target_modules")] = ",".join(cfg.target_modules)
    other = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in HIDDEN}
    return values, json.dumps(other, ensure_ascii=False, indent=1)


def on_preset(preset: str | None, lang: str) -> list:
    values, other = preset_values(preset)
    return [*values, other, preset_text(preset, lang)]


def config_from_form(preset, values: list, other_json: str, lang: str, workspace: str):
    """A validated TrainConfig from the form (raises UserError with a message in ``lang``)."""
    fields = dict(zip(FORM, values))
    try:
        other = json.loads(other_json or "{}")
        if not isinstance(other, dict):
            raise ValueError("{…}")
    except ValueError as exc:
        # Python's own JSON message is English: the Japanese text names the place instead.
        where = MSG["json_at"][lang].format(line=exc.lineno, col=exc.colno) if hasattr(exc, "lineno") else "{…}"
        raise UserError(MSG["bad_json"][lang].format(err=exc, where=where), MSG["json_fix"][lang]) from None
    for name in ("learning_rate", "batch_size", "max_steps", "lora_r", "lora_alpha", "lora_dropout"):
        if fields[name] is None:
            raise UserError(MSG["bad_number"][lang].format(field=FIELDS[name][lang]))
    try:
        fields["save_steps"] = [int(s) for s in str(fields["save_steps"] or "").replace(" ", "").split(",") if s]
    except ValueError:
        raise UserError(MSG["bad_steps"][lang]) from None
    if any(s < 1 for s in fields["save_steps"]):
        raise UserError(MSG["bad_steps"][lang])
    fields["target_modules"] = [m.strip() for m in str(fields["target_modules"] or "").split(",") if m.strip()]
    for name in ("batch_size", "max_steps", "lora_r", "lora_alpha"):
        fields[name] = int(fields[name])
    config = train_config.make_config(preset or None, **{**other, **fields, "workspace": workspace})
    config.validate()
    page_paths.readable_reference(config.data, workspace, "training data")
    page_paths.readable_reference(config.eval_data, workspace, "evaluation data")
    return config


def estimate_text(est, lang: str) -> str:
    """``pipelines.training.estimate.Estimate`` in the page's language."""
    hw = est.hardware
    where = (MSG["gpu"] if hw.kind == "gpu" else MSG["cpu"])[lang].format(count=hw.count, name=hw.name, gb=hw.memory_gb)
    tips = [TIPS[k][lang] for k, show in (("qlora", est.method != "qlora"), ("checkpointing", not est.checkpointing),
                                          ("micro", True), ("shorter", True), ("gpu", True)) if show]
    verdict = (MSG["est_fits"][lang].format(gb=hw.memory_gb - est.total_gb) if est.fits else
               MSG["est_short"][lang].format(gb=est.total_gb - hw.memory_gb, tips=", ".join(tips)))
    lines = [MSG["est_model"][lang].format(name=est.model.name, params=est.model.params / 1e9, method=est.method,
                                           trainable=est.trainable / 1e6),
             MSG["est_memory"][lang].format(where=where, total=est.total_gb, verdict=verdict)]
    lines += [f"  {(MEMORY.get(k, k) if lang == 'ja' else k)}: {v:.1f} GB" for k, v in est.memory_gb.items()]
    lines.append(MSG["est_time"][lang].format(s=est.step_s, h=est.total_h, steps=est.max_steps))
    for n in est.notes:
        ja = next((t for start, t in NOTES.items() if n.startswith(start) or start in n), n)
        lines.append(MSG["est_note"][lang] + (ja if lang == "ja" else n))
    return "\n".join(lines)


def estimate(state: AppState, preset, *values_and_lang):
    """(message, equivalent command) for the form."""
    *values, other_json, lang = values_and_lang
    from pipelines.training.estimate import estimate_config
    try:
        config = config_from_form(preset, values, other_json, lang, str(state.workspace.root))
        text = estimate_text(estimate_config(config, ws=state.workspace), lang)
    except UserError as exc:
        return fail(exc, lang), gr.update()
    return (notice.notice("info", text) + contamination_notice(config, state.workspace, lang),
            command_box(train.equivalent_cli(config)))


def contamination_notice(config, ws, lang: str) -> str:
    """A warning notice when exam questions the run will be evaluated on are in its training data
    (``train.contamination_checks``); '' when none are (or the data cannot be read here)."""
    train_file, checks = train.contamination_checks(config, ws)
    parts = []
    for c in checks:
        if c.flagged_ids:
            shown = "、".join(c.flagged_ids[:5]) if lang == "ja" else ", ".join(c.flagged_ids[:5])
            parts.append(MSG["contaminated"][lang].format(n=len(c.flagged_ids), total=c.n_questions,
                                                          file=Path(c.questions_file).name,
                                                          ids=shown + ("…" if len(c.flagged_ids) > 5 else "")))
    if not parts:
        return ""
    fix = MSG["contaminated_fix"][lang].format(train=train_file)
    return notice.notice("info", " ".join(parts), fix, lang)


def command_box(cli: str):
    """The command box with ``cli`` in it: hidden while it has none (empty, it pushed the runs down)."""
    return gr.update(value=cli, visible=bool(cli))


def launch(state: AppState, preset, model, data, method, template, learning_rate, batch_size, max_steps, save_steps,
           lora_r, lora_alpha, lora_dropout, target_modules, run_name, other_json, lang: str,
           request: gr.Request = None):
    """(message, command, run choice, runs table, stop button).

    Every input is a named parameter (in ``FORM`` order): Gradio passes ``request`` only to a
    handler without ``*args``."""
    values = [model, data, method, template, learning_rate, batch_size, max_steps, save_steps, lora_r, lora_alpha,
              lora_dropout, target_modules, run_name]
    ws, user = state.workspace, users.current_user(request)
    try:
        config = config_from_form(preset, values, other_json, lang, str(ws.root))
        launched = train.launch(config, workspace=ws, user=user)
    except UserError as exc:
        return fail(exc, lang), gr.update(), gr.update(), gr.update(), gr.update()
    name = display_name(launched.run_dir)
    users.record(ws.root, user, "train", name, run_dir=str(launched.run_dir), preset=preset or "")
    # Several machines: what each other machine runs to join, under the command.
    joins = "".join(f"\n# rank {k}: {line}" for k, line in enumerate(train.join_commands(config, launched.run_dir), 1))
    return (notice.notice("ok", MSG["launched"][lang].format(run=name, dir=launched.run_dir))
            + contamination_notice(config, ws, lang),
            command_box(launched.cli + joins),
            gr.update(choices=runs_view.run_choices(ws, lang), value=str(launched.run_dir)), runs_frame(ws, lang),
            gr.update(interactive=True))


def runs_frame(ws, lang: str = "en") -> pd.DataFrame:
    rows = [[r["run_name"], status_word(r["status"], lang), f"{r.get('step', 0)}/{r.get('max_steps') or '?'}",
             r.get("method"), r.get("model"),
             job_message(r, field_labels(lang), lang)]
            for r in runs_view.list_runs(ws)]
    return pd.DataFrame(rows, columns=header(RUN_COLS, lang))


def display_name(run_dir: str) -> str:
    """The name the user gave the run (its directory name when it has none)."""
    cfg = train_runs.read_json(Path(run_dir) / "config.json").get("config") or {}
    return cfg.get("run_name") or Path(run_dir).name


def curves(df: pd.DataFrame, name: str, lang: str):
    return metric_chart.run_curves(df, title=name, empty_message=MSG["no_metrics"][lang],
                                   words={k: t[lang] for k, t in CHART.items()})


def monitor(run_dir: str | None, lang: str):
    """(progress html, loss/lr figure, log tail, checkpoints frame, stop button) of one run."""
    if not run_dir:
        return ("", metric_chart.empty_figure(MSG["no_run"][lang]), log_html(""),
                pd.DataFrame(columns=header(CKPT_COLS, lang)), gr.update(interactive=False))
    st = train_runs.run_status(run_dir)
    df = runs_view.read_metrics(run_dir)
    last = df.iloc[-1].to_dict() if len(df) else {}
    running = st.get("status") in train_runs.ACTIVE
    detail = f"· {CHART['loss'][lang]} {last.get('loss', float('nan')):.4f} · {last.get('tokens_per_s', 0):.0f} tok/s" \
        if last else ""
    name = display_name(run_dir)
    progress = progress_html(f"{MSG['training'][lang]}: {name}", int(st.get("step") or 0),
                             int(st.get("max_steps") or 0) or None, status=st.get("status", "?"),
                             elapsed=last.get("elapsed_s"), detail=detail, lang=lang, eta_s=last.get("eta_s"),
                             error=job_message(st, field_labels(lang), lang) if st.get("status") == "failed" else "")
    ckpts = pd.DataFrame([[c.get("name"), c.get("step"), round(c.get("train_hours") or 0, 4), c.get("path")]
                          for c in train_runs.list_checkpoints(run_dir)], columns=header(CKPT_COLS, lang))
    return (progress, curves(df, name, lang), log_html(tail(Path(run_dir) / "train.log", LOG_LINES)), ckpts,
            gr.update(interactive=running))


def tick(state: AppState, run_dir, lang: str):
    return (runs_frame(state.workspace, lang), gr.update(choices=runs_view.run_choices(state.workspace, lang)),
            *monitor(run_dir, lang))


def stop(state: AppState, run_dir, lang: str, request: gr.Request = None):
    if not run_dir:
        return notice.error(MSG["no_run"][lang], lang=lang)
    if train_runs.run_status(run_dir).get("status") not in train_runs.ACTIVE:
        return notice.error(MSG["not_running"][lang], lang=lang)
    users.record_stop(state.workspace.root, users.current_user(request), run_dir)
    # stop_run waits for the run to save and exit: not in the request.
    threading.Thread(target=train_runs.stop_run, args=(run_dir,), daemon=True).start()
    return notice.notice("info", MSG["stopping"][lang])


def resume(state: AppState, run_dir, lang: str, request: gr.Request = None):
    if not run_dir:
        return notice.error(MSG["no_run"][lang], lang=lang)
    user = users.current_user(request)
    try:
        launched = train.resume(run_dir, user=user)
    except UserError as exc:
        return fail(exc, lang)
    users.record(state.workspace.root, user, "train", display_name(launched.run_dir), run_dir=str(launched.run_dir),
                 resumed=True)
    return notice.notice("ok", MSG["resumed"][lang].format(run=display_name(launched.run_dir), dir=launched.run_dir))

