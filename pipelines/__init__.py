"""Plain-Python pipelines of the JMedLoRA workbench (never import gradio here).

Each module is usable as ``python -m pipelines.<name>`` and importable from Python.
"""

from pipelines import quiet as _quiet

_quiet.install()
