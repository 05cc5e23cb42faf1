"""Clearing the shared project between GUI tests the way QGIS itself closes a project."""

from __future__ import annotations

from qgis.core import QgsProject


def clear_project(iface) -> None:
    """Stop the canvas's render job, then clear the project. QGIS cancels its canvas jobs before it closes a
    project; pytest-qgis's canvas renders the layers a test added in a worker thread, and a label expression
    with an aggregate (the HSF project names) reads the project from that thread: clearing the project under
    it crashed QGIS 3.44 (segmentation fault in QgsProject::createExpressionContextScope)."""
    iface.mapCanvas().stopRendering()
    QgsProject.instance().clear()
