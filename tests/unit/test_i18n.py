"""The committed zh_CN translation is complete, matches the sources and loads for QGIS's Chinese locales."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import QLocale, QTranslator

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "huijiao_plugin"
TS = ROOT / "i18n" / "huijiao_zh_CN.ts"
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def messages(ts_path: Path) -> list[tuple[str, str, ET.Element]]:
    """(context, source, translation element) of every message of a .ts file."""
    root = ET.parse(ts_path).getroot()
    return [
        (context.findtext("name") or "", message.findtext("source") or "", message.find("translation"))
        for context in root.iter("context")
        for message in context.iter("message")
    ]


def test_no_unfinished_or_empty_translation():
    entries = messages(TS)
    assert entries, "the .ts holds no message"
    unfinished = [src for _, src, tr in entries if tr is None or tr.get("type") in ("unfinished", "obsolete")]
    empty = [src for _, src, tr in entries if tr is not None and not (tr.text or "").strip()]
    assert unfinished == [], f"{len(unfinished)} unfinished: {unfinished[:10]}"
    assert empty == [], f"{len(empty)} empty: {empty[:10]}"


def test_translations_keep_the_format_placeholders():
    wrong = [
        (src, tr.text)
        for _, src, tr in messages(TS)
        if tr is not None
        and tr.text
        and sorted(PLACEHOLDER.findall(src)) != sorted(PLACEHOLDER.findall(tr.text))
    ]
    assert wrong == []


def test_ts_contains_every_string_pylupdate5_extracts(tmp_path):
    sources = sorted(p for p in PLUGIN_DIR.rglob("*.py") if p.name != "resources_rc.py")
    forms = sorted(PLUGIN_DIR.rglob("*.ui"))
    fresh = tmp_path / "fresh.ts"
    pro = tmp_path / "fresh.pro"
    pro.write_text(
        "SOURCES = " + " \\\n    ".join(str(p) for p in sources) + "\n"
        + ("FORMS = " + " \\\n    ".join(str(p) for p in forms) + "\n" if forms else "")
        + f"TRANSLATIONS = {fresh}\n",
        encoding="utf-8",
    )  # fmt: skip
    subprocess.run(["pylupdate5", "-noobsolete", str(pro)], check=True, capture_output=True)
    extracted = {(ctx, src) for ctx, src, _ in messages(fresh)}
    assert ("@default", "Huijiao") in extracted  # the extraction itself works
    committed = {(ctx, src) for ctx, src, _ in messages(TS)}
    missing = sorted(extracted - committed)
    assert missing == [], f"{len(missing)} strings not in {TS.name} (run make translations): {missing[:10]}"


@pytest.fixture(scope="module")
def qm_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("qm")
    subprocess.run(["lrelease", "-silent", str(TS), "-qm", str(directory / "huijiao_zh_CN.qm")], check=True)
    return directory


@pytest.mark.parametrize("locale_name", ["zh_CN", "zh-Hans", "zh"])
def test_qm_loads_for_chinese_locales(qm_dir, locale_name):
    translator = QTranslator()
    assert translator.load(QLocale(locale_name), "huijiao", "_", str(qm_dir))
    assert translator.translate("@default", "Huijiao") == "汇交联动"
    assert translator.translate("@default", "Farmland comparison") == "耕地比对"


@pytest.mark.parametrize("locale_name", ["en_US", "C", "zh-Hant", "zh_TW"])
def test_qm_not_loaded_for_other_locales(qm_dir, locale_name):
    translator = QTranslator()
    assert not translator.load(QLocale(locale_name), "huijiao", "_", str(qm_dir))
    assert translator.translate("@default", "Huijiao") == ""


def test_data_driven_labels_are_translated(qm_dir):
    """Labels kept in tables and passed to tr() as variables (preset titles and help, roles, categories,
    preset parameters, table headers) are marked with QT_TRANSLATE_NOOP so pylupdate5 extracts them."""
    from qgis.PyQt.QtCore import QCoreApplication

    from huijiao_plugin.core.compare.presets import CATEGORY_LABELS, PRESETS
    from huijiao_plugin.processing.algorithms.compare_common import ROLE_LABELS
    from huijiao_plugin.toolbelt.i18n import tr

    translator = QTranslator()
    assert translator.load(QLocale("zh_CN"), "huijiao", "_", str(qm_dir))
    labels = [spec.title for spec in PRESETS.values()] + [spec.help for spec in PRESETS.values()]
    labels += list(CATEGORY_LABELS.values()) + list(ROLE_LABELS.values())
    labels += [p.label for spec in PRESETS.values() for p in spec.all_params]
    labels += [p.help for spec in PRESETS.values() for p in spec.all_params if p.help]
    labels += [label for spec in PRESETS.values() for p in spec.all_params for _v, label in p.choices]
    labels += [r.filter for spec in PRESETS.values() for r in spec.roles if r.filter]
    QCoreApplication.installTranslator(translator)
    try:
        untranslated = [text for text in labels if tr(text) == text]
    finally:
        QCoreApplication.removeTranslator(translator)
    assert untranslated == []
