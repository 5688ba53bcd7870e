"""A machine-translated report file as ``jmedlora reports translate`` leaves it (provenance in
``metadata.translation``, glossary flags), written directly so review tests need no server."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipelines.core.repo import ASSETS

ROWS = [
    ("r1", "Mild cardiomegaly. No pleural effusion.", "軽度の心拡大を認める。", ["pleural effusion"]),
    ("r2", "No acute cardiopulmonary process.", "急性の心肺病変なし。", []),
    ("r3", "Right lower lobe consolidation.", "右下葉に陰影。", ["consolidation"]),
]


def write_translated(folder: Path, name: str = "reports_ja.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for sample_id, en, ja, missing in ROWS:
        shutil.copy(ASSETS / "reports" / "normal_pa.png", folder / f"{sample_id}.png")
        prov = {"model": "fake-model", "endpoint": "http://127.0.0.1:9/v1", "time": "2026-12-06T10:00:00+00:00",
                "prompt_hash": "0" * 16, "glossary_missing": missing}
        lines.append({"id": sample_id, "image": f"{sample_id}.png", "findings_ja": ja, "findings_en": en,
                      "metadata": {"translation": prov}})
    lines.append({"id": "r4", "image": "r1.png", "findings_ja": "人が書いた所見。", "findings_en": "Written by a person."})
    path = folder / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    return path
