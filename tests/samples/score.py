"""How many fields of the real samples the verifier reads right: `python tests/samples/score.py [folder ...]`.

Each folder holds PDFs and a truth.json (the values a person reads off each file). Every file is verified on its
own, as `fapiao verify` does without a ledger; a field counts when the value read equals the truth's. The
`kind` of a fully digital invoice (数电普票 / 数电专票) is compared through its printed title.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.records import Verdict
from agent.verify import verify_file

HERE = Path(__file__).parent
TITLES = {"数电普票": "电子发票（普通发票）", "数电专票": "电子发票（增值税专用发票）"}
NOT_FIELDS = {"source", "qr_payload_amount_is"}


def wrong_fields(verdict: Verdict, truth: dict[str, str]) -> tuple[int, list[str]]:
    read = verdict.fields.model_dump(mode="json") if verdict.fields else {}
    compared, wrong = 0, []
    for name, expected in truth.items():
        if name in NOT_FIELDS or (name == "kind" and expected not in TITLES):
            continue  # a legacy file's kind is a description, not a printed field
        value, wanted = (
            (read.get("title"), TITLES[expected]) if name == "kind" else (read.get(name), expected)
        )
        compared += 1
        if value != wanted:
            wrong.append(f"{name}: truth {wanted!r}, read {value!r}")
    return compared, wrong


def main(folders: list[Path]) -> int:
    right = total = accepted = files = 0
    for folder in folders:
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
        for name, expected in sorted(truth.items()):
            verdict = verify_file(folder / name, None)
            compared, wrong = wrong_fields(verdict, expected)
            files, accepted = files + 1, accepted + (verdict.status == "ok")
            total, right = total + compared, right + compared - len(wrong)
            print(f"{folder.name}/{name}: {verdict.status} {verdict.reason}".rstrip())
            for line in wrong:
                print(f"    {line}")
    print(f"fields right {right} of {total}; files accepted {accepted} of {files}")
    return 0 if right == total and accepted == files else 1


if __name__ == "__main__":
    sys.exit(main([Path(arg) for arg in sys.argv[1:]] or [HERE / "real-sd", HERE / "real-legacy"]))
