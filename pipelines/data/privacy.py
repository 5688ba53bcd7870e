"""``jmedlora privacy FILE...``: print what would block sending these documents off this machine.

The scanner itself is ``pipelines.core.privacy`` (every path that sends text away uses it);
this command reads documents (PDF, text, Word) with ``pipelines.data.documents``. It exits 1
when anything was found, so a script can refuse to send the files on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import cli
from pipelines.core.errors import cli_guard
from pipelines.core.privacy import scan
from pipelines.data.documents import load_document


@dataclass
class ScanConfig:
    files: list[str] = field(metadata=cli.meta(cli.required(), cli.positional()))  # documents to scan


@cli_guard
def main(argv: list[str] | None = None) -> None:
    parser = cli.config_parser("privacy", ScanConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    args = cli.config_from_args(ScanConfig, ns)
    found = []
    for f in args.files:
        doc = load_document(Path(f))
        for finding in scan(doc.text):
            found.append({"file": doc.name, "line": doc.text.count("\n", 0, finding.start) + 1, **finding.to_dict()})
    if ns.json:
        import json
        print(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        for x in found:
            print(f"{x['file']}:{x['line']}\t{x['label']}\t{x['text']}")
        print(f"{len(found)} finding(s)")
    total = len(found)
    raise SystemExit(1 if total else 0)


if __name__ == "__main__":
    main()
