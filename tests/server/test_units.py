"""Pure functions of the server: region normalisation and containment, the catalog loader (including the
plugin's real catalog files)."""

from __future__ import annotations

import json

import pytest

from exchange_server.catalog import DEFAULT_CATALOG_DIR, load_catalog
from exchange_server.regions import RegionCodeError, contains, normalise


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("61", "61"),
        ("610000", "61"),
        ("610100", "6101"),
        ("6101", "6101"),
        ("610102", "610102"),
        ("610102000", "610102"),
        ("610102001", "610102001"),
        ("610102001000", "610102001"),
        ("610102000000", "610102"),
        ("610102001002", "610102001002"),
        (610431, "610431"),
        (" 610431 ", "610431"),
    ],
)
def test_normalise(code, expected):
    assert normalise(code) == expected


@pytest.mark.parametrize("code", ["", "6", "61a", "6101021", "000000", "61-01", None, "6101020010001"])
def test_normalise_refuses(code):
    with pytest.raises(RegionCodeError):
        normalise(code)


def test_contains():
    assert contains("61", "6101") and contains("6101", "610102") and contains("610102", "610102001")
    assert contains("610102", "610102")
    assert (
        not contains("610102", "6101") and not contains("610103", "610102") and not contains("6102", "610102")
    )


def test_catalog_loader_rules(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps(
            {
                "id": "a",
                "department": "nync",
                "frequency": "yearly",
                "fields": [{"name": "X", "required": True, "aliases": ["甲"]}],
                "deadline_days_after_release": 45,
            }
        ),
        "utf-8",
    )
    (tmp_path / "b.json").write_text(
        json.dumps({"id": "b", "department": "base", "frequency": "quarterly"}), "utf-8"
    )
    (tmp_path / "broken.json").write_text("{not json", "utf-8")
    cat = load_catalog(tmp_path)
    assert set(cat.datasets) == {"a", "b", "bghtb"}
    assert cat.submit_departments("a") == ("nync",)
    assert cat.submit_departments("b") == ("zrzy",)
    assert set(cat.submit_departments("bghtb")) == {"zrzy", "nync"}
    assert cat.submit_departments("unknown") == ()
    assert cat.get("a").is_annual and cat.get("a").due_days == 45
    assert cat.get("b").is_monitoring
    assert cat.get("a").required_fields()[0].names() == {"x", "甲"}
    both = load_catalog(tmp_path, base_submitters=("zrzy", "nync"))
    assert both.submit_departments("b") == ("zrzy", "nync")


def test_plugin_catalog_is_readable_without_qgis():
    cat = load_catalog(DEFAULT_CATALOG_DIR)
    assert DEFAULT_CATALOG_DIR.is_dir()
    owners = {ds.id: ds.department for ds in cat.datasets.values()}
    assert owners["gbznt"] == "nync" and owners["dltb_biangeng"] == "zrzy" and owners["jctb"] == "zrzy"
    assert all(ds.layer_names for ds in cat.datasets.values())
    assert cat.get("jctb").is_monitoring


def test_server_never_imports_qgis():
    import subprocess
    import sys

    from tests.server.helpers import REPO

    code = (
        "import sys, exchange_server.app, exchange_server.__main__, exchange_server.scenario;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'osgeo'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
