"""Paths to files shipped inside the plugin package."""

from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent.parent
ICONS_DIR = PLUGIN_DIR / "resources" / "icons"
STYLES_DIR = PLUGIN_DIR / "resources" / "styles"
DATA_DIR = PLUGIN_DIR / "data"
I18N_DIR = PLUGIN_DIR / "i18n"
UI_DIR = PLUGIN_DIR / "gui" / "ui"


def icon_path(name: str) -> str:
    """Path of an SVG icon in ``resources/icons`` (use with ``QIcon`` in gui/ code)."""
    return str(ICONS_DIR / name)


def data_path(*parts: str) -> Path:
    """Path of a data file shipped in ``huijiao_plugin/data``."""
    return DATA_DIR.joinpath(*parts)


def plugin_version() -> str:
    """The version from metadata.txt (staged into the package; read from the repo root in development)."""
    for candidate in (PLUGIN_DIR / "metadata.txt", PLUGIN_DIR.parent / "metadata.txt"):
        if candidate.exists():
            for line in candidate.read_text(encoding="utf-8").splitlines():
                if line.startswith("version="):
                    return line.split("=", 1)[1].strip()
    return "0.0.0"
