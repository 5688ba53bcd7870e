"""A pipeline's UserError shown in a form: command-line flags (``--warmup-steps``) and config
field names (``warmup_steps``) become the label of the form field the user sees, so the
message points at something on the page. Fields without a widget keep the name they have in
the "other settings" JSON, where they are edited. In Japanese, an error whose ``code`` the
catalog knows (``workbench.messages_ja``) is said in Japanese; one it does not know keeps its
English text under a Japanese line saying so."""
from __future__ import annotations

import re

from components import notice
from pipelines.errors import UserError
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
