"""What models are asked: IgakuQA-format question files (``igakuqa``) and prompt templates (``prompts``).

Shared vocabulary below ``models`` and the capabilities: a backend scores ``igakuqa.Question``
choices and the server formats chat prompts with ``prompts``, without either depending on
evaluation.
"""
