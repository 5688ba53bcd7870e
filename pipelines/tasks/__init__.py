"""What models are asked: IgakuQA-format question files (``igakuqa``), prompt templates (``prompts``), and
chest X-ray report files (``reports``) with their images read safely as pixels only (``images``).

Shared vocabulary below ``models`` and the capabilities: a backend scores ``igakuqa.Question``
choices and the server formats chat prompts with ``prompts``, without either depending on
evaluation.
"""
