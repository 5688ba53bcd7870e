"""Training runs (LoRA, QLoRA, continual pretraining): the config and presets (``config``), data
(``data``), the memory and time estimate (``estimate``), launching and following a run
(``launch``), the loop inside the launched processes (``worker``), its checkpoints: saved, resumed
from, published and evaluated (``checkpoints``), live metrics (``metrics``) and run folders on
disk (``runs``).
"""
