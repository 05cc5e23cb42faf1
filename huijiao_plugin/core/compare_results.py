"""Comparison results kept in the project GeoPackage, not in temporary layers.

Each run is one layer of the GeoPackage the session names (next to the .qgz, or in a folder the user set),
named for people: "<preset name>_<date>_<n>", e.g. ``划入候选_2026-12-07_2``; a re-run on the same day gets
the next n, so no name repeats. Earlier runs are listed from the file and can be loaded again.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from osgeo import ogr
from qgis.core import QgsProject, QgsVectorFileWriter, QgsVectorLayer

from huijiao_plugin.core.compare import provenance
from huijiao_plugin.toolbelt.i18n import tr


class ResultsError(RuntimeError):
    """A result could not be written (message for users)."""


def _safe(title: str) -> str:
    return re.sub(r"[\s/\\:|\"'*?<>]+", "", title) or "result"


def run_layer_names(path: str | Path) -> list[str]:
    """The comparison runs in ``path`` (every layer whose name ends in _<date>_<n>), newest first."""
    path = Path(path)
    if not path.exists():
        return []
    ds = ogr.Open(str(path))
    if ds is None:
        return []
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    ds = None
    runs = [n for n in names if re.search(r"_\d{4}-\d{2}-\d{2}_\d+$", n)]

    def key(name: str) -> tuple[str, int]:
        date, seq = name.rsplit("_", 2)[1:]
        return date, int(seq)

    return sorted(runs, key=key, reverse=True)


def next_run_name(path: str | Path, title: str, day: dt.date | None = None) -> str:
    """``<title>_<date>_<n>`` with n one past the highest of that title and date in ``path``."""
    stem = f"{_safe(title)}_{(day or dt.date.today()).isoformat()}_"
    used = [int(n[len(stem) :]) for n in run_layer_names(path) if n.startswith(stem)]
    return f"{stem}{max(used, default=0) + 1}"


def save_run(
    path: str | Path,
    layer: QgsVectorLayer,
    title: str,
    day: dt.date | None = None,
    record: dict[str, Any] | None = None,
) -> QgsVectorLayer:
    """Write ``layer`` (a comparison result) into the GeoPackage ``path`` under a new run name, with its
    provenance ``record`` (layer metadata + the provenance table, once per run), and return the layer read
    back from the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = next_run_name(path, title, day)
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = name
    options.fileEncoding = "UTF-8"
    if path.exists():
        options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
    error, message, *_rest = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, str(path), QgsProject.instance().transformContext(), options
    )
    if error != QgsVectorFileWriter.WriterError.NoError:
        raise ResultsError(tr("Cannot write the results to {path}: {error}").format(path=path, error=message))
    if record:
        provenance.write_gpkg(str(path), name, record, title)
    return load_run(path, name)


def load_run(path: str | Path, name: str) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"{path}|layername={name}", name, "ogr")
    if not layer.isValid():
        raise ResultsError(tr("Cannot read the result {name} from {path}").format(name=name, path=path))
    return layer
