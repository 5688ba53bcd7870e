"""Merge tab: evolutionary merging of registered adapters or models on a small dev set.

Pick the inputs, method, dev/test data, metric and budget; estimate; start, stop and resume the
search (a job: ``pipelines.merging.jobs``; closing the page does not stop it); watch each
candidate's dev score and the best so far; read the test table (base, each input, the merge,
with 95% CIs and the paired verdict); open the merge beside its inputs in the Compare tab.
Handlers are module-level functions of ``state`` and plain values (tests call them directly).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from components import metric_chart, notice
from pipelines.core import jobs, page_paths
from pipelines.core.errors import UserError
from pipelines.evaluation import metrics
from pipelines.merging import evolve as merge
from pipelines.merging import jobs as merge_jobs
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.methods import METHODS
from workbench import users
from workbench.field_errors import error_html, job_message
from workbench.i18n import Labels
from workbench.state import AppState
from workbench.wiring import bind

SAMPLE = str(Path(__file__).resolve().parent.parent / "assets" / "questions" / "sample_ja.jsonl")
TABLE_COLS = ["role", "model", "dev", "test", "ci_low", "ci_high"]
COLS = {"role": {"ja": "役割", "en": "role"}, "model": {"ja": "モデル", "en": "model"},
        "dev": {"ja": "開発セット", "en": "dev"}, "test": {"ja": "テスト平均", "en": "test"},
        "ci_low": {"ja": "95%信頼区間 下限", "en": "ci_low"}, "ci_high": {"ja": "95%信頼区間 上限", "en": "ci_high"}}
ROLES = {"base": {"ja": "ベース", "en": "base"}, "input": {"ja": "入力 {k}", "en": "input {k}"},
         "merge": {"ja": "マージ", "en": "merge"}}
CHART = {"ja": {"title": "マージ探索", "x_title": "世代（0＝各入力そのまま）", "generation": "世代",
                "candidate": "候補", "best": "これまでの最良", "score": "開発セットのスコア"},
         "en": {"title": "Merge search", "x_title": "generation (0 = each input alone)", "generation": "generation",
                "candidate": "candidate", "best": "best so far", "score": "dev score"}}
# The report's verdict_code said again in the page's language (the report's own text is English).
VERDICT = {
    "no_merge_found": {"ja": "探索では開発セットで {best} を上回るマージが見つからず、保存したモデルはその入力の重みです。マージは良くなっていません。",
                       "en": "The search found no merge better than {best} on the dev set; the saved model is that input's weights. The merge is not better."},
    "better": {"ja": "マージはテストセットで最良の入力（{best}）より良い結果です：{metric} の差 {diff:+.3f}［95%信頼区間 {lo:+.3f}〜{hi:+.3f}］、n={n}。",
               "en": "The merge is better than the best input ({best}) on the test set: {metric} {diff:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], n={n}."},
    "not_better": {"ja": "マージはテストセットで最良の入力（{best}）より良いとは言えません：{metric} の差 {diff:+.3f}［95%信頼区間 {lo:+.3f}〜{hi:+.3f}］、n={n}。差は誤差の範囲内{against}です。",
                   "en": "The merge is NOT better than the best input ({best}) on the test set: {metric} {diff:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}], n={n}. The difference is within noise{against}."},
    "against": {"ja": "か、マージに不利", "en": " or against the merge"},
}
L = {
    "tab": {"ja": "マージ", "en": "Merge"},
    "intro": {"ja": "### 進化的モデルマージ\n登録済みのアダプタ／モデルを小さな開発セットで重み探索（CMA-ES）してマージし、探索に使っていないテスト問題で入力と比べます。探索は別プロセスで動き、このページを閉じても止まりません。",
              "en": "### Evolutionary model merging\nSearch merge weights (CMA-ES) for registered adapters or models on a small dev set, then compare the merge with its inputs on test questions the search never saw. The search is its own process: closing this page does not stop it."},
    "inputs": {"ja": "入力（2つ以上：同じベースのアダプタ、または同じ構造のモデル）",
               "en": "Inputs (two or more: adapters of one base, or models of one architecture)"},
    "base": {"ja": "ベースモデル（タスクベクトルの基準、空欄＝入力から推定）", "en": "Base model (task vectors are relative to it; empty = from the inputs)"},
    "method": {"ja": "マージ手法", "en": "Merge method"},
    "dev": {"ja": "開発セット（IgakuQA 形式 JSONL）", "en": "Dev set (IgakuQA-format JSONL)"},
    "test": {"ja": "テストセット（空欄＝開発セットの一部を取り分ける）", "en": "Test set (empty = hold out part of the dev set)"},
    "fraction": {"ja": "テストに取り分ける割合", "en": "Share held out for the test"},
    "metric": {"ja": "探索で最大化する指標", "en": "Metric the search maximises"},
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
}
MSG = {
    "started": {"ja": "マージ探索を開始しました（{out}）。", "en": "Merge search started ({out})."},
    "stopping": {"ja": "停止を依頼しました：現在の候補の採点後に止まります。", "en": "Stop requested: the search stops after the current candidate."},
    "no_out": {"ja": "まだマージを開始していません。", "en": "No merge started yet."},
    "status": {"ja": "状態：{status} · 候補 {done}/{total} · 最良（開発）{best}",
               "en": "Status: {status} · candidates {done}/{total} · best on dev {best}"},
    "estimate": {"ja": "見積もり：{c} 候補 × 開発 {q} 問 → 1候補 {s:.1f} 秒、探索 約{m:.1f} 分、テスト 約{tm:.1f} 分、メモリ 約{g:.2f} GiB",
                 "en": "Estimate: {c} candidates × {q} dev questions → {s:.1f} s per candidate, ~{m:.1f} min search, ~{tm:.1f} min test, memory ~{g:.2f} GiB"},
    "not_done": {"ja": "マージはまだ終わっていません。", "en": "The merge has not finished yet."},
    "compare": {"ja": "比較タブのチェックポイントで選択しました：{refs}。比較タブを開いて評価してください。",
                "en": "Selected in the Compare tab's checkpoints: {refs}. Open the Compare tab to evaluate them."},
    "chart_empty": {"ja": "まだ採点された候補はありません", "en": "No candidates scored yet"},
}
# A short gloss beside each method's name on the Japanese page (the name is what the CLI takes).
METHOD_JA = {"linear": "重みつき平均", "task_arithmetic": "タスク算術", "ties": "符号の多数決で統合",
             "dare_linear": "ランダムに間引いて平均", "dare_ties": "ランダムに間引いて符号の多数決",
             "jradievo": "JRadiEvo 方式：間引き率・各入力の刈り込みと重み・全体の倍率 λ"}
STATES = {"queued": {"ja": "待機中", "en": "queued"}, "running": {"ja": "実行中", "en": "running"},
          "finished": {"ja": "完了", "en": "finished"}, "stopped": {"ja": "停止", "en": "stopped"},
          "failed": {"ja": "失敗", "en": "failed"}, "none": {"ja": "未開始", "en": "not started"}}


def field_labels() -> dict:
    """The form's labels by MergeConfig field, so an error names the field on the page."""
    return {"dev": L["dev"], "test": L["test"], "test_fraction": L["fraction"], "out": L["out"],
            "inputs": L["inputs"], "base": L["base"], "method": L["method"], "metric": L["metric"],
            "budget": L["budget"]}


def _error(exc: Exception, lang: str) -> str:
    if isinstance(exc, UserError):
        return error_html(exc, field_labels(), lang)
    return notice.unexpected(type(exc).__name__, lang)


def role_word(role: str, lang: str) -> str:
    if role.startswith("input "):
        return ROLES["input"][lang].format(k=role.split(" ", 1)[1])
    return ROLES.get(role, {}).get(lang, role)


def verdict_text(report: dict, lang: str) -> str:
    """The report's verdict in ``lang``; its English text when the report predates verdict codes."""
    code, paired = report.get("verdict_code"), report.get("paired_vs_best_input") or {}
    if code not in VERDICT:
        return report.get("verdict", "")
    try:
        return VERDICT[code][lang].format(
            best=report.get("best_input", ""), metric=metric_label(report.get("metric", ""), lang),
            diff=paired.get("diff", 0), lo=paired.get("ci_low", 0), hi=paired.get("ci_high", 0), n=paired.get("n", 0),
            against=VERDICT["against"][lang] if paired.get("diff", 0) <= 0 else "")
    except (KeyError, ValueError, TypeError):
        return report.get("verdict", "")


def metric_label(metric: str, lang: str) -> str:
    return metrics.labels(lang).get(metric, metric)


def method_choices(lang: str) -> list[tuple[str, str]]:
    return [(f"{m}（{METHOD_JA[m]}）" if lang == "ja" and m in METHOD_JA else m, m) for m in METHODS]


def metric_choices(lang: str) -> list[tuple[str, str]]:
    names = metrics.labels(lang)
    return [(names.get(k, k), k) for k in merge.METRICS]


def config_from_form(state: AppState, inputs, base, method, dev, test, fraction, metric, budget,
                     out: str = "") -> MergeConfig:
    out = out or str(state.workspace.subdir("merges") / f"merge-{time.strftime('%Y%m%d-%H%M%S')}")
    return MergeConfig(inputs=tuple(inputs or ()), base=base or None, method=method, dev=dev or "",
                       test=test or None, test_fraction=float(fraction), metric=metric, budget=int(budget),
                       out=out, workspace=str(state.workspace.root))


def readable_config(state: AppState, *form, out: str = "") -> MergeConfig:
    """The form's merge, its question files checked against what a page may read (pipelines/core/page_paths.py)."""
    config = config_from_form(state, *form, out)
    for path, what in ((config.dev, "dev questions"), (config.test, "test questions")):
        page_paths.readable(path, state.workspace.root, what)
    return config


def command_preview(state: AppState, *form) -> str:
    config = config_from_form(state, *form)
    return jobs.shell_line(merge_jobs.command_for(dataclasses.replace(config, workspace=None)))


def loaded_command(out: str) -> str | None:
    """The command of the merge in ``out`` (the one started last there, a resume included); None
    when ``out`` holds no merge. The form below may describe another, new merge."""
    folder = Path(out) if out else None
    if folder is None or not folder.is_dir():
        return None
    if (folder / "status.json").exists():
        cli = jobs.status(folder).get("cli")
        if cli:
            return cli
    if (folder / "config.json").exists():           # run from a terminal: its settings, as a command
        config = merge.resume_config(folder)
        return jobs.shell_line(merge_jobs.command_for(dataclasses.replace(config, workspace=None)))
    return None


def shown_command(out: str):
    """What the command box shows when the output folder changes: that merge's own command."""
    return loaded_command(out) or gr.update()


def estimate(state: AppState, lang: str, *form) -> str:
    """Runs ``--estimate`` in this process: loads the inputs once and times a few dev questions."""
    try:
        with tempfile.TemporaryDirectory() as scratch:      # an estimate leaves no merge folder behind
            config = readable_config(state, *form, out=scratch)
            est = merge.run(dataclasses.replace(config, estimate=True))["estimate"]
    except Exception as exc:                  # noqa: BLE001 — shown as a notice, never a traceback
        return _error(exc, lang)
    return notice.notice("info", MSG["estimate"][lang].format(
        c=est["candidates"], q=est["dev_questions"], s=est["seconds_per_candidate"], m=est["search_seconds"] / 60,
        tm=est["test_seconds"] / 60, g=est["memory_bytes"] / 2 ** 30), lang=lang)


def start(state: AppState, lang: str, *form) -> tuple[str, str, str]:
    """(notice, merge folder, command)."""
    try:
        config = readable_config(state, *form)
        job = merge_jobs.start_merge(config, state.workspace)
    except Exception as exc:                  # noqa: BLE001
        return _error(exc, lang), "", ""
    return notice.notice("ok", MSG["started"][lang].format(out=job.run_dir), lang=lang), job.run_dir, job.cli


def stop_button(out: str):
    """Stop is offered only while the merge in ``out`` runs."""
    running = bool(out) and (Path(out) / "status.json").exists() and jobs.status(out)["status"] in jobs.ACTIVE
    return gr.update(interactive=running)


def resume_button(out: str):
    """Resume is offered for a merge that stopped or failed; not for a finished one (its report is
    written), a running one, or a folder without a merge."""
    folder = Path(out) if out else None
    if folder is None or not (folder / "config.json").exists() or (folder / "report.json").exists():
        return gr.update(interactive=False)
    state = jobs.status(folder)["status"] if (folder / "status.json").exists() else "stopped"
    return gr.update(interactive=state not in (*jobs.ACTIVE, "finished"))


def stop(state: AppState, lang: str, out: str, request: gr.Request = None) -> str:
    if not out:
        return notice.notice("info", MSG["no_out"][lang], lang=lang)
    if (Path(out) / "status.json").exists():
        users.record_stop(state.workspace.root, users.current_user(request), out)
    (Path(out) / jobs.STOP_FILE).write_text(str(time.time()))   # graceful; the job saves and exits
    return notice.notice("info", MSG["stopping"][lang], lang=lang)


def resume(state: AppState, lang: str, out: str) -> tuple[str, str]:
    """(notice, command)."""
    try:
        if not out:
            raise UserError(MSG["no_out"][lang])
        job = merge_jobs.start_merge(MergeConfig(resume=out), state.workspace)
    except Exception as exc:                  # noqa: BLE001
        return _error(exc, lang), ""
    return notice.notice("ok", MSG["started"][lang].format(out=out), lang=lang), job.cli


def poll(state: AppState, lang: str, out: str):
    """(status line, chart, test table, verdict) of the merge in ``out``."""
    cols = [COLS[c][lang] for c in TABLE_COLS]
    empty = pd.DataFrame(columns=cols)
    if not out:
        return "", metric_chart.empty_figure(MSG["chart_empty"][lang]), empty, ""
    st = merge_jobs.merge_status(out)
    cands = st["candidates"]
    progress = st.get("progress") or {}
    total = progress.get("total") or len(cands)
    best = f"{st['best_so_far'][-1]:.3f}" if cands else "—"
    line = MSG["status"][lang].format(status=STATES.get(st["status"], {}).get(lang, st["status"]), done=len(cands), total=total, best=best)
    if st["status"] == "failed":
        line = notice.error(line + " · " + job_message(st, field_labels(), lang), None, lang)
    else:
        line = notice.notice("info", line, lang=lang)
    fig = metric_chart.search_curve([c["generation"] for c in cands], [c["score"] for c in cands], st["best_so_far"],
                                    label=(metric_label(merge.resume_config(out).metric, lang)
                                           if (Path(out) / "config.json").exists() else CHART[lang]["score"]),
                                    empty_message=MSG["chart_empty"][lang], words=CHART[lang])
    report = st["report"]
    if not report:
        return line, fig, empty, ""
    rows = [[role_word(r["role"], lang), r["model"], None if r["dev"] is None else round(r["dev"], 3),
             round(r["test"]["mean"], 3), round(r["test"]["ci_low"], 3), round(r["test"]["ci_high"], 3)]
            for r in report["rows"]]
    name = f"**{report.get('registered_as', '')}**"
    metric = metric_label(report["metric"], lang)
    verdict = (f"{name}（{metric}）：" if lang == "ja" else f"{name} ({metric}): ") + verdict_text(report, lang)
    return line, fig, pd.DataFrame(rows, columns=cols), verdict


def compare_refs(state: AppState, out: str) -> list[str]:
    """The merged model, its base and inputs, as Compare-tab checkpoint references."""
    st = merge_jobs.merge_status(out) if out else {"report": None}
    report = st["report"]
    if not report or not report.get("registered_as"):
        raise UserError(MSG["not_done"][state.lang])
    config = merge.resume_config(out)
    known = {ref for _, ref in state.model_choices()}
    refs = [report["registered_as"], *([config.base] if config.base else []), *config.inputs]
    return [r for r in refs if r in known]


def open_in_compare(state: AppState, lang: str, out: str):
    """(notice, update of the Compare tab's checkpoint list)."""
    try:
        refs = compare_refs(state, out)
    except Exception as exc:                  # noqa: BLE001
        return _error(exc, lang), gr.update()
    return (notice.notice("ok", MSG["compare"][lang].format(refs=", ".join(refs)), lang=lang),
            gr.update(choices=state.model_choices(), value=refs))


def refresh_choices(state: AppState):
    """The registry as it is now (a merge or a training run may have added models)."""
    return gr.update(choices=state.model_choices()), gr.update(choices=[("", "")] + state.model_choices())


def create_merge_tab(state: AppState, t: Labels, lang: gr.State, compare: dict | None = None,
                     tab: gr.Tab | None = None) -> dict:
    """``compare``: the Compare tab's components (its checkpoint list is what the open button sets);
    ``tab``: this tab, so opening it refreshes the input lists."""
    d = MergeConfig()
    t.make(gr.Markdown, L["intro"])
    with gr.Row():
        inputs = t.make(gr.Dropdown, L["inputs"], choices=state.model_choices(), multiselect=True,
                        elem_id="merge-inputs")
        base = t.make(gr.Dropdown, L["base"], choices=[("", "")] + state.model_choices(), value="",
                      elem_id="merge-base")
        method = t.make(gr.Dropdown, L["method"], choices=method_choices(state.lang), value=d.method,
                        elem_id="merge-method")
    with gr.Row():
        dev = t.make(gr.Textbox, L["dev"], value=SAMPLE, elem_id="merge-dev")
        test = t.make(gr.Textbox, L["test"], value="", elem_id="merge-test")
        fraction = t.make(gr.Number, L["fraction"], value=d.test_fraction, minimum=0.05, maximum=0.95,
                          elem_id="merge-fraction")
    with gr.Row():
        metric = t.make(gr.Dropdown, L["metric"], choices=metric_choices(state.lang), value=d.metric,
                        elem_id="merge-metric")
        budget = t.make(gr.Number, L["budget"], value=d.budget, precision=0, minimum=0, elem_id="merge-budget")
    with gr.Row():
        est_btn = t.make(gr.Button, L["estimate"], elem_id="merge-estimate")
        start_btn = t.make(gr.Button, L["start"], variant="primary", elem_id="merge-start")
        stop_btn = t.make(gr.Button, L["stop"], elem_id="merge-stop", interactive=False)
        resume_btn = t.make(gr.Button, L["resume"], elem_id="merge-resume", interactive=False)
    message = gr.HTML(elem_id="merge-notice")
    out = t.make(gr.Textbox, L["out"], elem_id="merge-out")
    command = t.make(gr.Code, L["command"], language="shell", elem_id="merge-command")
    status = gr.HTML(elem_id="merge-status")
    chart = gr.Plot(elem_id="merge-chart", show_label=False)
    t.make(gr.Markdown, {"ja": "#### " + L["table"]["ja"], "en": "#### " + L["table"]["en"]})
    table = gr.Dataframe(headers=[COLS[c][state.lang] for c in TABLE_COLS], interactive=False, elem_id="merge-table")
    verdict = gr.Markdown(elem_id="merge-verdict")
    compare_btn = t.make(gr.Button, L["compare"], elem_id="merge-open-compare")
    timer = gr.Timer(2.0)

    form = [inputs, base, method, dev, test, fraction, metric, budget]
    for comp in form:
        comp.change(lambda *f: command_preview(state, *f), form, [command])
    est_btn.click(lambda lg, *f: estimate(state, lg, *f), [lang, *form], [message])
    start_btn.click(lambda lg, *f: start(state, lg, *f), [lang, *form], [message, out, command])
    stop_btn.click(bind(stop, state), [lang, out], [message])
    out.change(shown_command, [out], [command])
    resume_btn.click(lambda lg, o: resume(state, lg, o), [lang, out], [message, command])
    timer.tick(lambda lg, o: (*poll(state, lg, o), stop_button(o), resume_button(o)), [lang, out],
               [status, chart, table, verdict, stop_btn, resume_btn])
    lang.change(lambda lg: (gr.update(choices=method_choices(lg)), gr.update(choices=metric_choices(lg))),
                [lang], [method, metric])
    targets = [compare["checkpoints"]] if compare else []
    compare_btn.click(lambda lg, o: open_in_compare(state, lg, o)[:1 + len(targets)], [lang, out],
                      [message, *targets])
    if tab is not None:
        tab.select(lambda: refresh_choices(state), None, [inputs, base])
    return {"inputs": inputs, "base": base, "out": out, "chart": chart, "table": table}
