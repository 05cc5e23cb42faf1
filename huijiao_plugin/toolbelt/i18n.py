"""The one translation function of the plugin (conventions §4).

Call ``tr("English text")`` as a plain function; pylupdate5 files the string under the ``@default``
context, which is also the runtime context, so the zh_CN translation applies everywhere — in docks,
dialogs and Processing algorithms alike. Never call it at import time.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication

CONTEXT = "@default"


def tr(text: str) -> str:
    """Translate ``text`` (English source) into the installed UI language."""
    return QCoreApplication.translate(CONTEXT, text)
