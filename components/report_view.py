"""Chest X-ray reports side by side: the image (zoomable), the reference report, and the reports
of several models, each with finding chips coloured by agreement with the reference.

Plain data in, HTML out: a chip is ``(finding name, this report's label, the reference's label,
agreement)``, labels being ``positive | uncertain | negative | unmentioned`` and agreement one of
``AGREEMENTS`` (the workbench decides it from the finding labeller's counts). Model and reference
text is untrusted: everything is HTML-escaped.

Colours: green, the finding is positive in both reports; red, missed (positive in the reference,
not in this report: the missed pneumothorax); amber, extra (positive here, not in the reference);
grey, neither positive (both say absent: a ✓; only one mentions it: plain). Problems come first.
"""
from __future__ import annotations

import html

CSS = """
.rv-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:10px;margin-top:8px}
.rv-card{border:1px solid #d0d7de;border-radius:10px;padding:10px 12px;background:#fff;color:#1f2328}
.rv-card.ref{background:#f6f8fa;border-color:#8c959f}
.rv-card .rv-who{font-weight:700;margin-bottom:4px;display:flex;gap:6px;flex-wrap:wrap;align-items:baseline}
.rv-card .rv-text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:14px;line-height:1.6;margin:6px 0;max-height:14em;overflow:auto}
.rv-card .rv-missing{color:#57606a;font-style:italic}
.rv-badge{display:inline-block;font-size:12px;font-weight:400;border-radius:8px;padding:0 6px;border:1px solid #d0d7de;background:#fff}
.rv-chips{display:flex;flex-wrap:wrap;gap:4px;margin-top:4px}
.rv-chip{display:inline-block;font-size:12px;border-radius:12px;padding:1px 8px;border:1px solid #d0d7de;background:#f6f8fa;color:#1f2328}
.rv-chip.agree{background:#dafbe1;border-color:#1a7f37;color:#116329}
.rv-chip.missed{background:#ffebe9;border-color:#cf222e;color:#a40e26;font-weight:700}
.rv-chip.extra{background:#fff8c5;border-color:#9a6700;color:#7d4e00}
.rv-chip.agree_negative{background:#f6f8fa;color:#57606a}
.rv-chip.neutral{background:#fff;color:#57606a;border-style:dashed}
.rv-chip.ref.positive,.rv-chip.ref.uncertain{background:#ddf4ff;border-color:#0969da;color:#0550ae}
.rv-chip.ref.negative{background:#fff;color:#57606a}
.rv-legend{font-size:12px;color:#57606a;display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:4px 0}
.rv-xray{border:1px solid #d0d7de;border-radius:10px;background:#000;overflow:hidden}
.rv-xray .rv-scroll{max-height:560px;overflow:auto}
.rv-xray img{display:block;max-width:none;height:auto}
.rv-xray .rv-caption{background:#fff;color:#57606a;font-size:12px;padding:4px 8px}
"""
LABELS = ("positive", "uncertain", "negative", "unmentioned")
AGREEMENTS = ("missed", "extra", "agree", "agree_negative", "neutral")     # the order chips are shown in
Chip = tuple[str, str, str, str]      # (finding name shown, this report's label, reference's label, agreement)

_TEXT = {
    "ja": {"positive": "あり", "uncertain": "疑い", "negative": "なし", "unmentioned": "記載なし",
           "missed": "見落とし", "extra": "過剰", "reference": "参照", "this": "このレポート",
           "not_run": "この症例は評価されていません", "empty": "（生成なし）", "no_findings": "所見の記載なし",
           "legend": "所見の色：", "zoom_hint": "スライダーで拡大し、スクロールで移動します。",
           "legend_items": {"agree": "参照と一致（あり）", "missed": "見落とし（参照にあり・このレポートになし）",
                            "extra": "過剰（参照になし・このレポートにあり）", "agree_negative": "どちらも「なし」",
                            "neutral": "一方のみ記載（陽性ではない）"}},
    "en": {"positive": "present", "uncertain": "uncertain", "negative": "absent", "unmentioned": "not mentioned",
           "missed": "missed", "extra": "extra", "reference": "reference", "this": "this report",
           "not_run": "This study was not evaluated", "empty": "(nothing generated)", "no_findings": "no finding stated",
           "legend": "Finding colours:", "zoom_hint": "Zoom with the slider, move by scrolling.",
           "legend_items": {"agree": "agrees with the reference (present)",
                            "missed": "missed (in the reference, not in this report)",
                            "extra": "extra (in this report, not in the reference)",
                            "agree_negative": "both say absent", "neutral": "stated on one side only (not present)"}},
}
_MARK = {"agree": "✓ ", "missed": "✗ ", "extra": "＋ ", "agree_negative": "", "neutral": ""}


def _e(text) -> str:
    return html.escape(str(text if text is not None else ""))


def _words(lang: str) -> dict:
    return _TEXT.get(lang, _TEXT["en"])


def chip(item: Chip, lang: str = "ja") -> str:
    """One finding of a model's report, coloured by agreement; the title says both labels."""
    name, label, ref_label, agreement = item
    t = _words(lang)
    title = f'{t["reference"]}: {t[ref_label]} / {t["this"]}: {t[label]}'
    word = t[agreement] if agreement in ("missed", "extra") else t[label]
    tick = " ✓" if agreement == "agree_negative" else ""
    return (f'<span class="rv-chip {agreement}" data-finding="{_e(name)}" data-agreement="{agreement}" '
            f'title="{_e(title)}">{_MARK.get(agreement, "")}{_e(name)} {_e(word)}{tick}</span>')


def chips(items: list[Chip], lang: str = "ja") -> str:
    """A model report's chips, problems first (missed, extra), then agreements."""
    ordered = sorted(items, key=lambda c: AGREEMENTS.index(c[3]) if c[3] in AGREEMENTS else len(AGREEMENTS))
    if not ordered:
        return f'<div class="rv-chips"><span class="rv-chip neutral">{_words(lang)["no_findings"]}</span></div>'
    return f'<div class="rv-chips">{"".join(chip(c, lang) for c in ordered)}</div>'


def reference_chips(items: list[tuple[str, str]], lang: str = "ja") -> str:
    """The reference report's findings: (finding name, label), those it mentions."""
    t = _words(lang)
    shown = [(n, lab) for n, lab in items if lab != "unmentioned"]
    if not shown:
        return f'<div class="rv-chips"><span class="rv-chip neutral">{t["no_findings"]}</span></div>'
    return '<div class="rv-chips">' + "".join(
        f'<span class="rv-chip ref {lab}" data-finding="{_e(n)}">{_e(n)} {_e(t[lab])}</span>' for n, lab in shown) + \
        "</div>"


def legend(lang: str = "ja") -> str:
    t = _words(lang)
    items = "".join(f'<span class="rv-chip {k}">{_MARK[k]}{_e(v)}</span>' for k, v in t["legend_items"].items())
    return f'<div class="rv-legend">{_e(t["legend"])} {items}</div>'


def badges(scores: list[tuple[str, float]]) -> str:
    return "".join(f'<span class="rv-badge">{_e(name)} {value:.2f}</span>' for name, value in scores)


def report_card(title: str, text: str | None, chips_html: str = "", scores: list[tuple[str, float]] = (),
                *, reference: bool = False, lang: str = "ja", key: str = "") -> str:
    """One report: who wrote it, per-report scores, the text and its finding chips. ``text`` None:
    the model has no report for this study."""
    t = _words(lang)
    if text is None:
        body = f'<div class="rv-missing">{t["not_run"]}</div>'
    else:
        body = f'<div class="rv-text">{_e(text) if text.strip() else t["empty"]}</div>{chips_html}'
    cls = "rv-card ref" if reference else "rv-card"
    return (f'<div class="{cls}" data-key="{_e(key)}"><div class="rv-who">{_e(title)} {badges(list(scores))}</div>'
            f'{body}</div>')


def side_by_side(reference_card: str, model_cards: list[str], lang: str = "ja", *, with_legend: bool = True) -> str:
    """The reference report, then the models' reports in a grid (two to four side by side)."""
    return f'{legend(lang) if with_legend else ""}{reference_card}<div class="rv-grid">{"".join(model_cards)}</div>'


def zoomable_image(data_url: str, alt: str, zoom: float = 1.0, caption: str = "", lang: str = "ja",
                   *, hint: bool = True) -> str:
    """The image at ``zoom`` × the frame's width, inside a frame that scrolls (pan by scrolling);
    the tab's zoom slider changes the width in the browser, without a round trip. ``hint``: say
    how to zoom (where a slider is beside the image)."""
    width = max(1.0, float(zoom or 1.0)) * 100
    note = " · ".join(_e(x) for x in (caption, _words(lang)["zoom_hint"] if hint else "") if x)
    return (f'<div class="rv-xray"><div class="rv-scroll"><img src="{_e(data_url)}" alt="{_e(alt)}" '
            f'style="width:{width:g}%"></div><div class="rv-caption">{note}</div></div>')
