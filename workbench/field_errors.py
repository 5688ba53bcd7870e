"""A pipeline's UserError shown in a form: command-line flags (``--warmup-steps``) and config
field names (``warmup_steps``) become the label of the form field the user sees, so the
message points at something on the page. Fields without a widget keep the name they have in
the "other settings" JSON, where they are edited."""
from __future__ import annotations

import re

from components import notice
from pipelines.errors import UserError

Text = dict[str, str]
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")
_WORD = re.compile(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")      # snake_case: a config field


def name_fields(text: str, labels: dict[str, Text], lang: str) -> str:
    """``text`` with every flag or field name that has a label replaced by 「label」."""
    def flag(m: re.Match) -> str:
        name = m.group(1).replace("-", "_")
        return f"「{labels[name][lang]}」" if name in labels else f"「{name}」"

    def word(m: re.Match) -> str:
        name = m.group(1)
        return f"「{labels[name][lang]}」" if name in labels else name

    return _WORD.sub(word, _FLAG.sub(flag, text))


def error_html(exc: UserError, labels: dict[str, Text], lang: str) -> str:
    return notice.error(name_fields(exc.problem, labels, lang),
                        name_fields(exc.fix, labels, lang) if exc.fix else None, lang)
