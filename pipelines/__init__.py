"""Plain-Python pipelines of the JMedLoRA workbench (never import gradio here).

One folder per capability; ``core`` at the bottom, the UI (``workbench/``) on top:

    core/        errors, the command line, files and locks, jobs, the workspace, audit log, users
    tasks/       what models are asked: IgakuQA question files and prompt templates
    models/      model references, generation and scoring backends, the local server
    data/        documents → instruction data: chunking, privacy guard, generation, store, curation
    training/    LoRA / QLoRA / continual pretraining: config, estimate, launch, the training loop
    evaluation/  scoring, metrics, intervals and paired tests, summaries, Table 1, blind review
    merging/     evolutionary merging of models and adapters on a small dev set

Every command is ``jmedlora NAME`` (``pipelines/core/commands.py``), the same as
``python -m pipelines.FOLDER.MODULE``; the names before the folders still work (``moved.py``).
"""

from pipelines import moved as _moved
from pipelines.core import quiet as _quiet

_quiet.install()
_moved.install()
