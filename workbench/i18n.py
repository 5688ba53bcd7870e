"""Japanese / English labels with a live switch.

Each tab keeps its own label dict next to its widgets (``{"key": {"ja": ..., "en": ...}}``)
and creates translatable widgets through ``Labels.make``; the language switch then
re-labels every registered widget in one update. ``--lang`` picks the start language,
``?lang=en`` in the address does the same per browser tab.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

LANGS = ("ja", "en")
Text = dict[str, str]

# Gradio's own words (its interface follows the browser's locale, not our switch) that its
# locales lack: the status tracker announces ``common.complete`` after every finished event,
# and with no entry in ja (nor in en, its fallback) the page showed the raw key on the Compare
# and Merge tabs, whose timers finish an event every second. Listed: the keys Gradio 6's
# frontend asks for that its ja locale has no entry for, among the components this app uses.
GRADIO_WORDS = {
    "ja": {"common": {"complete": "完了", "download_all": "すべてダウンロード", "progress": "進捗",
                      "upload": "アップロード"},
           "dataframe": {"filter": "絞り込み", "clear_filter": "絞り込みを解除"},
           "status": {"queue_position": "待ち順"}},
    "en": {"common": {"complete": "Complete"}},
}


def gradio_i18n() -> gr.I18n:
    """What ``demo.launch(i18n=...)`` adds to Gradio's own dictionaries."""
    return gr.I18n(**GRADIO_WORDS)


# Widgets whose visible text is their value rather than their label.
_VALUE_TEXT = (gr.Button, gr.Markdown)


class Labels:
    def __init__(self, lang: str = "ja"):
        if lang not in LANGS:
            raise ValueError(f"language must be one of {LANGS}")
        self.lang = lang
        self._registry: dict[int, tuple[Any, dict[str, Text]]] = {}

    def __call__(self, text: Text | str) -> str:
        return text if isinstance(text, str) else text[self.lang]

    def make(self, cls, text: Text, **kwargs):
        """``cls(label=text[lang], **kwargs)`` (or ``value=`` for buttons and Markdown), registered.

        Keyword arguments ``info`` and ``placeholder`` may also be label dicts.
        """
        attr = "value" if issubclass(cls, _VALUE_TEXT) and not issubclass(cls, gr.DownloadButton) else "label"
        texts = {attr: text}
        for extra in ("info", "placeholder"):
            if isinstance(kwargs.get(extra), dict):
                texts[extra] = kwargs[extra]
                kwargs[extra] = kwargs[extra][self.lang]
        comp = cls(**{attr: text[self.lang]}, **kwargs)
        self._registry[id(comp)] = (comp, texts)
        return comp

    def tab(self, text: Text, **kwargs) -> gr.Tab:
        tab = gr.Tab(text[self.lang], **kwargs)
        self._registry[id(tab)] = (tab, {"label": text})
        return tab

    @property
    def components(self) -> list:
        return [c for c, _ in self._registry.values()]

    def updates(self, lang: str) -> list:
        """One ``gr.update`` per registered component, in ``components`` order."""
        if lang not in LANGS:
            lang = self.lang
        return [gr.update(**{attr: t[lang] for attr, t in texts.items()}) for _, texts in self._registry.values()]
