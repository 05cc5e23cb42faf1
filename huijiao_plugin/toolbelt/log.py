"""Forward Python ``logging`` records of the plugin to the QGIS message log (tag "Huijiao")."""

from __future__ import annotations

import logging

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "Huijiao"
ROOT_LOGGER = "huijiao_plugin"


class QgsMessageLogHandler(logging.Handler):
    """A logging handler writing to ``QgsMessageLog`` with the matching message level."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            level = Qgis.MessageLevel.Critical
        elif record.levelno >= logging.WARNING:
            level = Qgis.MessageLevel.Warning
        else:
            level = Qgis.MessageLevel.Info
        try:
            QgsMessageLog.logMessage(self.format(record), LOG_TAG, level)
        except Exception:  # a log call must never break the caller
            self.handleError(record)


def install_handler() -> logging.Handler:
    """Attach one handler to the plugin's root logger and return it (remove it in ``unload()``)."""
    handler = QgsMessageLogHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    logging.getLogger(ROOT_LOGGER).removeHandler(handler)
