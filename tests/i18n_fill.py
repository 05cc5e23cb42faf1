"""Fill the committed i18n/huijiao_zh_CN.ts from the English→Chinese pairs in i18n/pending/*.json.

Development tool, run after `make translations` (pylupdate5 adds new source strings as unfinished):

    .venv/bin/python -m tests.i18n_fill            # fill, report what is still missing (exit 1 if any)
    .venv/bin/python -m tests.i18n_fill --check    # only report, change nothing

Contributors write their pairs to i18n/pending/<name>.json (one JSON object {"English source": "中文"}),
run this tool, and delete the pending files once the .ts holds them (the .ts is the one source).
Existing finished translations in the .ts are kept unless a pending file gives a different one.
Obsolete/vanished entries are not touched (pylupdate5 -noobsolete removes them).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TS_PATH = ROOT / "i18n" / "huijiao_zh_CN.ts"
PENDING_DIR = ROOT / "i18n" / "pending"
LANGUAGE = "zh_CN"


def load_pairs(pending_dir: Path = PENDING_DIR) -> dict[str, str]:
    """Merge every pending JSON file (sorted by name); a later file wins on conflicts (reported)."""
    pairs: dict[str, str] = {}
    for path in sorted(pending_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            print(f"skipping {path.name}: not valid JSON ({exc})", file=sys.stderr)
            continue
        if not isinstance(data, dict):
            print(f"skipping {path.name}: not a JSON object", file=sys.stderr)
            continue
        for source, translation in data.items():
            if not isinstance(translation, str) or not translation.strip():
                continue
            if source in pairs and pairs[source] != translation:
                print(f"conflict for {source!r}: {pairs[source]!r} replaced by {translation!r} ({path.name})")
            pairs[source] = translation
    return pairs


def fill(ts_path: Path, pairs: dict[str, str], write: bool = True) -> list[str]:
    """Fill translations in ``ts_path``; return the sources still without a translation."""
    tree = ET.parse(ts_path)
    root = tree.getroot()
    root.set("language", LANGUAGE)
    missing = []
    for message in root.iter("message"):
        source = message.findtext("source") or ""
        translation = message.find("translation")
        if translation is None:
            translation = ET.SubElement(message, "translation")
        if source in pairs:
            translation.text = pairs[source]
        if translation.text and translation.text.strip():
            translation.attrib.pop("type", None)
        else:
            translation.set("type", "unfinished")
            missing.append(source)
    if write:
        ET.indent(tree, space="    ")
        body = ET.tostring(root, encoding="unicode")
        ts_path.write_text(
            '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n' + body + "\n", encoding="utf-8"
        )
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ts", type=Path, default=TS_PATH)
    parser.add_argument("--pending", type=Path, default=PENDING_DIR)
    parser.add_argument("--check", action="store_true", help="report only, do not write the .ts")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.pending)
    missing = fill(args.ts, pairs, write=not args.check)
    for source in missing:
        print(f"missing translation: {source!r}")
    print(f"{len(pairs)} pairs from {args.pending}; {len(missing)} source strings without translation")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
