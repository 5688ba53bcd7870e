"""Training runs (LoRA, QLoRA, continual pretraining): the config and presets (``config``), data
(``data``), the memory and time estimate (``estimate``), launching and following a run
(``launch``), the accelerate config files for several GPUs or machines (DDP, FSDP, DeepSpeed
ZeRO-3) and the command each machine runs (``distributed``), the loop inside the launched processes
(``worker``) and what it does differently when the weights are sharded (``sharded``), its
checkpoints: saved, resumed from, published and evaluated (``checkpoints``), live metrics
(``metrics``) and run folders on disk (``runs``).
"""
