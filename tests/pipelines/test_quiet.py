"""Known-harmless noise is gone from adapter loads; other warnings still show.

Each case emits the exact notice itself (whether a library emits it depends on the machine), once after
``import pipelines`` and once without it: the control shows the notice does reach stderr when nothing
silences it, so the silenced run proves the filter, not the notice's absence."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

EMIT = ("import logging, warnings\n"
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning(\n"
        "    'Failed to load CPU gemm_4bit_forward from kernels-community: no network')\n"
        "warnings.warn_explicit('`is_gradient_checkpointing` is deprecated and will be removed', FutureWarning,\n"
        "                       'modeling_utils.py', 1, module='transformers.modeling_utils')\n"
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('a real problem')\n"
        "warnings.warn('another real problem', FutureWarning)\n")


def _stderr(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120).stderr


def test_without_the_filters_the_notices_reach_the_user():
    err = _stderr(EMIT)
    assert "kernels-community" in err and "is_gradient_checkpointing" in err, err


def test_known_notices_are_silenced_but_other_messages_pass():
    err = _stderr("import pipelines\n" + EMIT)
    assert "kernels-community" not in err and "is_gradient_checkpointing" not in err, err
    assert "a real problem" in err and "another real problem" in err, err
