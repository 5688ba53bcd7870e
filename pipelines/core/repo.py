"""Where the workbench's own files are: the repository root and its ``assets/`` folder.

One place for it, so moving a module never silently changes which folder it reads.
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
