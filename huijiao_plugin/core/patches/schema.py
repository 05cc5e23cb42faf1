"""The documented GeoPackage schema of the 变化图斑 (change patch) dataset ``bghtb``.

One GeoPackage holds one county's patches (any number of years):

``BGHTB`` (MultiPolygon layer, the county's projected CRS, e.g. EPSG:4545)
    one row per patch; the fields are listed in ``PATCH_FIELDS`` below. Identity:

    * ``uuid``: a UUID4 given when the patch is born and never reused, kept through every export, field trip
      and import (it is the key that field packages are matched by);
    * ``number`` (图斑编号): county code (6) + year (4) + sequence (``SEQUENCE_DIGITS`` digits, zero padded),
      e.g. ``61042320250007``; unique per county and year and never renumbered. The sequence counter lives in
      ``BGHTB_META`` (key ``seq:<county>:<year>``): deleted patches leave gaps, numbers are never reused.

    Coordinates: ``lon``/``lat`` = centroid in CGCS2000 geographic (EPSG:4490) degrees; ``gk_x``/``gk_y`` =
    the centroid in the layer's Gauss-Krüger CRS written the Chinese survey way: **X = northing (北),
    Y = easting (东)**. Areas: ``area_m2`` ellipsoidal (domain.md §5, 2 decimals), ``area_mu`` = m² × 0.0015.

``BGHTB_HISTORY`` (attribute table)
    every change of a tracked field (status, result, verifier, …, geometry) with who/when/old → new. Rows are
    written by SQLite triggers installed on ``BGHTB``, so an edit made with any tool (the plugin, the QGIS
    attribute table, OGR) is recorded; ``updated_by`` and ``edit_source`` of the edited row name who and how.

``BGHTB_ATTACHMENTS`` (attribute table)
    photos and other files of a patch: path relative to the folder ``<gpkg stem>_attachments`` next to the
    GeoPackage, time taken, position (lon/lat, EPSG:4490) and direction (方位角, degrees from north).

``BGHTB_META`` (attribute table, key/value)
    schema version, the number sequences and other settings of the dataset.

``BGHTB_IMPORTS`` (attribute table)
    one row per imported field package (package id and content checksum): the double-import guard.

``BGHTB_SYNC`` (attribute table)
    per exported package and patch the values last exchanged with the field (JSON), used to tell desk
    changes from field changes on import (conflict report).

``BGHTB_CONFLICTS`` (attribute table)
    field values that were not applied because the desk had changed the same patch (nothing is lost).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = "1"

PATCH_LAYER = "BGHTB"
HISTORY_TABLE = "BGHTB_HISTORY"
ATTACHMENTS_TABLE = "BGHTB_ATTACHMENTS"
META_TABLE = "BGHTB_META"
IMPORTS_TABLE = "BGHTB_IMPORTS"
SYNC_TABLE = "BGHTB_SYNC"
CONFLICTS_TABLE = "BGHTB_CONFLICTS"
GEOMETRY_COLUMN = "geom"
ATTACHMENTS_DIR_SUFFIX = "_attachments"

SEQUENCE_DIGITS = 4

# --- patch types (图斑类型): stored code -> Chinese label --------------------------------------------------
TYPE_NONAGRI = "nonagri"  # 非农化
TYPE_NONGRAIN = "nongrain"  # 非粮化
TYPE_INCLUDE = "include_candidate"  # 划入候选
TYPE_EXCLUDE = "exclude_candidate"  # 调出候选 (with reason)
TYPE_VERSION = "version_change"  # 版本变化
TYPE_BOUNDARY = "boundary_mismatch"  # 边界不一致
TYPE_MANUAL = "manual"  # 手工标记
TYPE_OTHER = "other"  # 其他

PATCH_TYPES = {
    TYPE_NONAGRI: "非农化",
    TYPE_NONGRAIN: "非粮化",
    TYPE_INCLUDE: "划入候选",
    TYPE_EXCLUDE: "调出候选",
    TYPE_VERSION: "版本变化",
    TYPE_BOUNDARY: "边界不一致",
    TYPE_MANUAL: "手工标记",
    TYPE_OTHER: "其他",
}

# --- sources of a patch -----------------------------------------------------------------------------------
SOURCE_COMPARISON = "comparison"
SOURCE_MANUAL = "manual"
SOURCE_FEATURE = "feature"
SOURCES = {SOURCE_COMPARISON: "比对结果", SOURCE_MANUAL: "手工标记", SOURCE_FEATURE: "由图层要素生成"}

# --- how an edit was made (edit_source, copied into the history) -------------------------------------------
EDIT_DESK = "desk"
EDIT_FIELD = "field"
EDIT_IMPORT = "import"
EDIT_COMPARISON = "comparison"
EDIT_SOURCES = {
    EDIT_DESK: "内业",
    EDIT_FIELD: "外业",
    EDIT_IMPORT: "外业成果导入",
    EDIT_COMPARISON: "比对生成",
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "str", "int", "real", "date", "datetime"
    alias: str  # Chinese alias shown in forms and tables
    width: int = 0
    tracked: bool = False  # changes recorded in BGHTB_HISTORY
    field_editable: bool = False  # edited by the field crew in a field package


PATCH_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("uuid", "str", "唯一标识", 36),
    FieldSpec("number", "str", "图斑编号", 20),
    FieldSpec("year", "int", "年度"),
    FieldSpec("seq", "int", "序号"),
    FieldSpec("patch_type", "str", "图斑类型", 32, tracked=True),
    FieldSpec("reason", "str", "原因", 254, tracked=True),
    FieldSpec("rule_id", "str", "规则", 64),
    FieldSpec("rule_params", "str", "规则参数", 0),
    FieldSpec("inputs", "str", "输入数据版本", 0),
    FieldSpec("source", "str", "来源", 16),
    FieldSpec("source_ref", "str", "来源要素", 254),
    FieldSpec("county_code", "str", "县级代码", 6),
    FieldSpec("township_code", "str", "乡级代码", 9),
    FieldSpec("village_code", "str", "村级代码", 12),
    FieldSpec("area_m2", "real", "面积(平方米)"),
    FieldSpec("area_mu", "real", "面积(亩)"),
    FieldSpec("lon", "real", "中心点经度"),
    FieldSpec("lat", "real", "中心点纬度"),
    FieldSpec("gk_x", "real", "中心点X(北)"),
    FieldSpec("gk_y", "real", "中心点Y(东)"),
    FieldSpec("status", "str", "状态", 16, tracked=True, field_editable=True),
    FieldSpec("result", "str", "核查结果", 16, tracked=True, field_editable=True),
    FieldSpec("verifier", "str", "核查人", 64, tracked=True, field_editable=True),
    FieldSpec("verify_date", "date", "核查日期", tracked=True, field_editable=True),
    FieldSpec("field_notes", "str", "外业说明", 0, tracked=True, field_editable=True),
    FieldSpec("notes", "str", "备注", 0, tracked=True),
    FieldSpec("reviewer", "str", "审核人", 64, tracked=True),
    FieldSpec("created_at", "datetime", "创建时间"),
    FieldSpec("created_by", "str", "创建人", 64),
    FieldSpec("updated_at", "datetime", "更新时间"),
    FieldSpec("updated_by", "str", "更新人", 64),
    FieldSpec("edit_source", "str", "修改方式", 16),
)

FIELD_NAMES = tuple(f.name for f in PATCH_FIELDS)
TRACKED_FIELDS = tuple(f.name for f in PATCH_FIELDS if f.tracked)
FIELD_EDITABLE = tuple(f.name for f in PATCH_FIELDS if f.field_editable)
ALIASES = {f.name: f.alias for f in PATCH_FIELDS}

HISTORY_FIELDS = (
    FieldSpec("patch_uuid", "str", "图斑唯一标识", 36),
    FieldSpec("changed_at", "str", "时间", 32),
    FieldSpec("changed_by", "str", "修改人", 64),
    FieldSpec("edit_source", "str", "修改方式", 16),
    FieldSpec("field", "str", "字段", 32),
    FieldSpec("old_value", "str", "原值", 0),
    FieldSpec("new_value", "str", "新值", 0),
)

ATTACHMENT_FIELDS = (
    FieldSpec("attachment_uuid", "str", "附件唯一标识", 36),
    FieldSpec("patch_uuid", "str", "图斑唯一标识", 36),
    FieldSpec("path", "str", "文件", 254),
    FieldSpec("kind", "str", "类型", 16),
    FieldSpec("taken_at", "str", "拍摄时间", 32),
    FieldSpec("lon", "real", "经度"),
    FieldSpec("lat", "real", "纬度"),
    FieldSpec("direction", "real", "方位角"),
    FieldSpec("taken_by", "str", "拍摄人", 64),
    FieldSpec("sha256", "str", "校验和", 64),
    FieldSpec("note", "str", "说明", 0),
)

META_FIELDS = (FieldSpec("key", "str", "键", 128), FieldSpec("value", "str", "值", 0))

IMPORT_FIELDS = (
    FieldSpec("package_id", "str", "外业包标识", 36),
    FieldSpec("checksum", "str", "校验和", 64),
    FieldSpec("imported_at", "str", "导入时间", 32),
    FieldSpec("imported_by", "str", "导入人", 64),
    FieldSpec("summary", "str", "摘要", 0),
)

SYNC_FIELDS = (
    FieldSpec("package_id", "str", "外业包标识", 36),
    FieldSpec("patch_uuid", "str", "图斑唯一标识", 36),
    FieldSpec("values_json", "str", "值", 0),
)

CONFLICT_FIELDS = (
    FieldSpec("package_id", "str", "外业包标识", 36),
    FieldSpec("patch_uuid", "str", "图斑唯一标识", 36),
    FieldSpec("detected_at", "str", "时间", 32),
    FieldSpec("desk_json", "str", "内业值", 0),
    FieldSpec("field_json", "str", "外业值", 0),
    FieldSpec("resolved", "int", "已处理"),
)

ATTRIBUTE_TABLES = {
    HISTORY_TABLE: HISTORY_FIELDS,
    ATTACHMENTS_TABLE: ATTACHMENT_FIELDS,
    META_TABLE: META_FIELDS,
    IMPORTS_TABLE: IMPORT_FIELDS,
    SYNC_TABLE: SYNC_FIELDS,
    CONFLICTS_TABLE: CONFLICT_FIELDS,
}

# Default minimum patch area per type in m² (domain.md §6: 建设用地 200, 农用地 400; **L**, configurable:
# every function taking ``min_areas`` accepts overrides).
DEFAULT_MIN_AREA_M2 = {
    TYPE_NONAGRI: 200.0,
    TYPE_NONGRAIN: 400.0,
    TYPE_INCLUDE: 400.0,
    TYPE_EXCLUDE: 400.0,
    TYPE_VERSION: 400.0,
    TYPE_BOUNDARY: 400.0,
    TYPE_MANUAL: 0.0,
    TYPE_OTHER: 400.0,
}


_HISTORY_COLUMNS = (
    f'"{HISTORY_TABLE}" (patch_uuid, changed_at, changed_by, edit_source, field, old_value, new_value)'
)


def history_trigger_sql() -> list[str]:
    """SQL that installs the history triggers on ``BGHTB`` (idempotent: drops and recreates)."""
    now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
    statements = [
        "DROP TRIGGER IF EXISTS bghtb_history_insert",
        "DROP TRIGGER IF EXISTS bghtb_history_update",
        "DROP TRIGGER IF EXISTS bghtb_history_delete",
        (
            f'CREATE TRIGGER bghtb_history_insert AFTER INSERT ON "{PATCH_LAYER}" BEGIN '
            f"INSERT INTO {_HISTORY_COLUMNS} VALUES (NEW.uuid, {now}, NEW.created_by, NEW.edit_source, "
            "'created', NULL, NEW.number); "
            "END"
        ),
        (
            f'CREATE TRIGGER bghtb_history_delete AFTER DELETE ON "{PATCH_LAYER}" BEGIN '
            f"INSERT INTO {_HISTORY_COLUMNS} VALUES (OLD.uuid, {now}, OLD.updated_by, OLD.edit_source, "
            "'deleted', OLD.number, NULL); "
            "END"
        ),
    ]
    body = []
    for name in TRACKED_FIELDS:
        body.append(
            f"INSERT INTO {_HISTORY_COLUMNS} SELECT NEW.uuid, {now}, NEW.updated_by, NEW.edit_source, "
            f"'{name}', OLD.\"{name}\", "
            f'NEW."{name}" WHERE OLD."{name}" IS NOT NEW."{name}";'
        )
    body.append(
        f"INSERT INTO {_HISTORY_COLUMNS} SELECT NEW.uuid, {now}, NEW.updated_by, NEW.edit_source, "
        "'geometry', "
        "printf('%.2f', OLD.area_m2), printf('%.2f', NEW.area_m2) "
        f'WHERE OLD."{GEOMETRY_COLUMN}" IS NOT NEW."{GEOMETRY_COLUMN}";'
    )
    statements.append(
        f'CREATE TRIGGER bghtb_history_update AFTER UPDATE ON "{PATCH_LAYER}" BEGIN '
        + " ".join(body)
        + " END"
    )
    return statements
