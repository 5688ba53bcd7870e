"""A pipeline's UserError shown in a form: command-line flags (``--warmup-steps``) and config
field names (``warmup_steps``) become the label of the form field the user sees, so the
message points at something on the page. Fields without a widget keep the name they have in
the "other settings" JSON, where they are edited. In Japanese, an error whose ``code`` the
catalog knows (``workbench.messages_ja``) is said in Japanese; one it does not know keeps its
English text under a Japanese line saying so."""
from __future__ import annotations

import re

from components import notice
from pipelines.core.errors import UserError
from workbench import messages_ja

Text = dict[str, str]
# One pass over flags and snake_case words, so a label put in is never matched again.
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
_NAME = re.compile(r"--([a-z][a-z0-9-]*)|\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")


def label(name: str, labels: dict[str, Text], lang: str) -> str:
    return f"「{labels[name][lang]}」" if name in labels else f"「{name}」"


def name_fields(text: str, labels: dict[str, Text], lang: str) -> str:
    """``text`` with every flag or field name that has a label replaced by 「label」."""
    def sub(m: re.Match) -> str:
        if m.group(1):
            return label(m.group(1).replace("-", "_"), labels, lang)
        name = m.group(2)
        return label(name, labels, lang) if name in labels else name

    return _NAME.sub(sub, text)


def message(exc: UserError, labels: dict[str, Text], lang: str) -> tuple[str, str | None]:
    """(problem, fix) of ``exc`` in ``lang``, fields named by their labels."""
    if lang == "ja":
        said = messages_ja.translate(getattr(exc, "code", None), getattr(exc, "params", {}),
                                     lambda name: label(name, labels, lang))
        if said:
            return said
    problem = name_fields(exc.problem, labels, lang)
    fix = name_fields(exc.fix, labels, lang) if exc.fix else None
    if lang == "ja" and not _JAPANESE.search(exc.problem):   # not in the catalog yet: say so, keep the original
        problem = f"{messages_ja.FALLBACK}\n{problem}"
    return problem, fix


def error_html(exc: UserError, labels: dict[str, Text] | None = None, lang: str = "ja") -> str:
    problem, fix = message(exc, labels or {}, lang)
    return notice.error(problem, fix, lang)


# Status files written before messages had codes: the runner's own words, recognised.
_EXIT = re.compile(r"exited with code (-?\d+)(?: \(killed\))?; see (\S+)")


def job_message(st: dict, labels: dict[str, Text], lang: str) -> str:
    """What a job's status says, in ``lang``: a failure's UserError through the catalog, a coded
    status message (``pipelines.core.jobs.say``) through ``messages_ja.STATUS``, else the message as it is."""
    end = st.get("end") or {}
    if st.get("status", "failed") == "failed" and end.get("problem"):
        problem, fix = message(UserError(end["problem"], end.get("fix"), code=end.get("code"),
                                         params=end.get("params")), labels, lang)
        return problem + (f"\n{notice.FIX.get(lang, notice.FIX['en'])}{fix}" if fix else "")
    text = st.get("message") or ""
    if lang != "ja" or not text:
        return text
    template = messages_ja.STATUS.get(st.get("message_code") or "")
    if template is not None:
        try:
            return template.format(**(st.get("message_params") or {}))
        except (KeyError, IndexError, ValueError):
            pass
    if text.startswith("the process ended without reporting") or \
            text.startswith("the training process ended without reporting"):
        return messages_ja.STATUS["job.dead"]
    found = _EXIT.search(text)
    if found:
        return messages_ja.STATUS["job.exit"].format(code=found.group(1), log=found.group(2))
    return text if _JAPANESE.search(text) else f"{messages_ja.FALLBACK}\n{text}"
