"""Known-harmless noise is gone from adapter loads; other warnings still show."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bitsandbytes_kernel_notice_is_silenced_but_other_messages_pass():
    code = ("import pipelines, logging, warnings, bitsandbytes\n"
            "import bitsandbytes.backends.cpu.ops\n"
            "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('a real problem')\n"
            "warnings.warn('another real problem', FutureWarning)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "kernels-community" not in out.stderr
    assert "a real problem" in out.stderr and "another real problem" in out.stderr
