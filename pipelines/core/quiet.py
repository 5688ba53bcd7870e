"""Known-harmless library noise, silenced at its source (by logger or module and message).

Each entry names why it is harmless; anything else a library says still reaches the user.
Importing ``pipelines`` installs these filters (no library is imported for it).
"""
from __future__ import annotations

import logging
import warnings

# (logger name, message start, why it is harmless)
_LOG_FILTERS = [
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community",
     "the optional hub kernel would be downloaded at run time, which this offline tool never does; "
     "bitsandbytes falls back to its built-in CPU 4-bit kernel"),
]
# (category, module regex, message regex, why)
_WARNING_FILTERS = [
    (FutureWarning, r"transformers\.modeling_utils", r"`is_gradient_checkpointing` is deprecated",
     "peft reads the old attribute name on every adapter load; the behaviour is unchanged"),
]


class _DropPrefix(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    for name, prefix, _why in _LOG_FILTERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefix) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropPrefix(prefix))
    for category, module, message, _why in _WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
