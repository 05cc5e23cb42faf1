"""Every difference between the QGIS / Qt / library versions we support, in one place.

Supported: QGIS 3.22 LTR (Qt 5) up to QGIS 4 (Qt 6). Each difference is detected by trying the feature,
never by parsing a version string, and has a comment saying which versions differ and how. The rest of the
plugin imports the names below instead of testing versions itself.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
from types import SimpleNamespace
from typing import Any

from qgis.core import Qgis, QgsField, QgsWkbTypes
from qgis.PyQt.QtCore import QMetaType, QVariant

log = logging.getLogger(__name__)


# --- Field types ------------------------------------------------------------------------------------
# QGIS < 3.38 builds fields from QVariant.Type; 3.38+ takes QMetaType.Type, and Qt 6 (QGIS 4) has no
# QVariant.Type at all. The numeric values are the same, so whichever QgsField accepts is used everywhere.
def _field_types() -> SimpleNamespace:
    try:
        QgsField("probe", QMetaType.Type.QString)
        t = QMetaType.Type
        return SimpleNamespace(
            String=t.QString, Int=t.Int, Double=t.Double, LongLong=t.LongLong, UInt=t.UInt,
            ULongLong=t.ULongLong, Bool=t.Bool, Date=t.QDate, DateTime=t.QDateTime,
        )  # fmt: skip
    except TypeError:
        t = getattr(QVariant, "Type")  # noqa: B009 - the Qt 5 spelling, absent from Qt 6
        return SimpleNamespace(
            String=t.String, Int=t.Int, Double=t.Double, LongLong=t.LongLong, UInt=t.UInt,
            ULongLong=t.ULongLong, Bool=t.Bool, Date=t.Date, DateTime=t.DateTime,
        )  # fmt: skip


FieldType = _field_types()


def field_type(field: QgsField) -> object:
    """The field's type as a ``FieldType`` value (``metaType()`` on 3.38+, ``type()`` before)."""
    meta_type = getattr(field, "metaType", None)
    return meta_type() if callable(meta_type) and FieldType.String is QMetaType.Type.QString else field.type()


# --- Geometry type names ---------------------------------------------------------------------------
# QGIS 3.22's QgsWkbTypes.displayString takes QgsWkbTypes.Type and accepts a plain int; from 3.30 the
# type is the Python enum Qgis.WkbType and an int raises TypeError, so an int is turned into that enum.
def wkb_display_string(wkb_type: object) -> str:
    """Readable name of a WKB type (``MultiPolygon``, ``PolygonZ``…), given the enum or its int value."""
    try:
        return QgsWkbTypes.displayString(wkb_type)
    except TypeError:
        return QgsWkbTypes.displayString(Qgis.WkbType(int(wkb_type)))


# --- Vectorised GEOS (optional shapely >= 2) --------------------------------------------------------
# shapely 2 runs GEOS over whole numpy arrays (shapely.from_wkb, shapely.intersection… as ufuncs); 1.8 (Debian
# 12's python3-shapely) has none of these. The version string cannot tell: Debian sid's build reports
# '0+unknown', development builds '2.1.0.dev0'. So the array functions are tried on two tiny polygons.
_VECTORISED_NAMES = (
    "area", "bounds", "box", "buffer", "contains", "from_wkb", "intersection", "intersects", "is_empty",
    "is_missing", "is_valid", "point_on_surface", "prepare", "to_wkb", "within",
)  # fmt: skip


# The Python of QGIS on Debian 12 has no shapely; `make ext-libs` puts a pinned shapely 2 wheel (built for
# numpy >= 1.21, whose C API it uses) into the plugin's own folder. That folder is used only where no shapely
# can be imported at all (never beside another shapely a QGIS plugin may have loaded) and the numpy here is
# one the wheel works with.
# The wheel brings its own GEOS (3.13, under a renamed file). On Linux the qgis and qgis_process programs
# link QGIS's GEOS themselves, so by default the wheel's calls would be bound to QGIS's GEOS (3.11 on Debian
# 12) wherever the names match: a mix that crashes QGIS. Loaded with RTLD_DEEPBIND, the wheel's modules and
# its GEOS look up names in their own libraries first, so the wheel runs on its own GEOS, as it does in a
# plain Python. Windows and macOS bind each library to the one it names: no flag needed there. Elsewhere
# (an ELF system without the flag) the wheel is taken only when its GEOS is QGIS's major.minor.
EXT_LIBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext-libs")
EXT_LIBS_NUMPY = (1, 21)
_SHAPELY_EXTENSIONS = ("shapely.lib", "shapely._geos", "shapely._geometry_helpers")


def _import_with_own_libraries() -> Any:
    """shapely and its compiled modules, each bound to the libraries it ships (see above)."""
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)
    flags = sys.getdlopenflags() if deepbind else 0
    if deepbind:
        sys.setdlopenflags(flags | deepbind)
    try:
        import shapely

        for name in _SHAPELY_EXTENSIONS:  # every compiled module now, not later without the flag
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
    finally:
        if deepbind:
            sys.setdlopenflags(flags)
    return shapely


def _use_ext_libs() -> None:
    if not os.path.isdir(EXT_LIBS) or EXT_LIBS in sys.path:
        return
    if "shapely" in sys.modules:  # already imported (or refused): never a second one beside it
        return
    try:
        if importlib.util.find_spec("shapely") is not None:
            return
    except (ImportError, ValueError):
        return
    try:
        import numpy as np
    except ImportError:
        return
    version = tuple(int(x) for x in re.findall(r"\d+", np.__version__)[:2])
    if version < EXT_LIBS_NUMPY:
        log.info("numpy %s is older than the plugin's shapely needs: one feature at a time", version)
        return
    sys.path.append(EXT_LIBS)
    try:
        shapely = _import_with_own_libraries()
        ours = (Qgis.geosVersionMajor(), Qgis.geosVersionMinor())
        own_geos = bool(getattr(os, "RTLD_DEEPBIND", 0)) or sys.platform in ("win32", "darwin")
        if not own_geos and tuple(shapely.geos_version[:2]) != ours:
            raise ImportError(f"its GEOS {shapely.geos_version} is not QGIS's GEOS {ours}")
    except Exception as exc:  # noqa: BLE001 - the folder is then left alone: one feature at a time
        sys.path.remove(EXT_LIBS)
        for name in [m for m in sys.modules if m == "shapely" or m.startswith("shapely.")]:
            del sys.modules[name]
        log.info("The plugin's ext-libs shapely is not used (%s): one feature at a time", exc)
        return
    log.info(
        "shapely %s (GEOS %s) from the plugin's ext-libs folder (%s); QGIS runs on GEOS %s",
        shapely.__version__, shapely.geos_version_string, EXT_LIBS, Qgis.geosVersion(),
    )  # fmt: skip


def vectorised_shapely() -> tuple[Any, Any]:
    """``(shapely, numpy)`` when shapely's array functions work here, else ``(None, None)`` with a logged note
    (the comparison engine then works one feature at a time with QgsGeometry, with the same results)."""
    try:
        _use_ext_libs()
        import numpy as np
        import shapely

        missing = [name for name in _VECTORISED_NAMES if not callable(getattr(shapely, name, None))]
        if missing:
            raise AttributeError("no shapely." + ", shapely.".join(missing))
        a = np.empty(2, dtype=object)
        a[:] = [shapely.box(0, 0, 2, 2), shapely.box(1, 1, 3, 3)]
        areas = shapely.area(shapely.intersection(a, a[::-1]))
        if not np.allclose(areas, [1.0, 1.0]):
            raise ValueError(f"intersection areas {areas!r}, expected [1, 1]")
    except Exception as exc:  # noqa: BLE001 - any failure only disables the optional fast path
        log.info("Vectorised GEOS not available (%s): comparing one feature at a time", exc)
        return None, None
    return shapely, np


# shapely 2.0 reads a curved WKB (CircularString, CurvePolygon…) as None with on_invalid="ignore"; 2.1
# raises NotImplementedError for the whole array instead. Such an array is then read one WKB at a time.
def from_wkb_ignoring_curves(shapely: Any, np: Any, wkbs: Any) -> Any:
    """``shapely.from_wkb(wkbs, on_invalid="ignore")`` with None for every curved or unreadable WKB."""
    try:
        return shapely.from_wkb(wkbs, on_invalid="ignore")
    except NotImplementedError:
        out = np.empty(len(wkbs), dtype=object)
        for i, wkb in enumerate(wkbs):
            try:
                out[i] = shapely.from_wkb(wkb, on_invalid="ignore")
            except NotImplementedError:
                out[i] = None
        return out


# === Platform guards =================================================================================
# Calls that only some operating systems have (the analysts mostly run QGIS on Windows). Each is used only
# through the helper here, which does nothing (and notes it once in the log) where the call is missing.
_noted_missing: set[str] = set()


def _note_missing(call: str, consequence: str) -> None:
    if call not in _noted_missing:
        _noted_missing.add(call)
        log.info("%s is not available on this system: %s", call, consequence)


def release_freed_memory() -> None:
    """glibc's ``malloc_trim(0)``: give the heap memory freed by a large run back to the system (glibc
    keeps freed blocks in per-thread arenas). Windows, macOS and musl have no such call: no-op."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # Windows: CDLL(None) is a TypeError
        _note_missing("malloc_trim", "freed memory stays with the process until the C library reuses it")
        return
    trim(0)
