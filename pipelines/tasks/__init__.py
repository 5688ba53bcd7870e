"""What models are asked: IgakuQA-format question files (``igakuqa``), prompt templates (``prompts``), and
chest X-ray report files (``reports``) with their images read safely as pixels only (``images``);
whether the questions are in a run's training data: a training file indexed once and cached
(``train_index``) and the contamination rules with the pre-flight check (``overlap``), here so that
training (before a run) and evaluation (after it) reach them alike.

Shared vocabulary below ``models`` and the capabilities: a backend scores ``igakuqa.Question``
choices and the server formats chat prompts with ``prompts``, without either depending on
evaluation.
"""
