"""What a check reports: rule ids and severities, :class:`Finding` and :class:`CheckReport`, the type and
CRS tables the rules share (re-exported by ``checks``)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from huijiao_plugin.compat import FieldType

ERROR = "error"
WARNING = "warning"

RULE_CRS_MISSING = "crs_missing"
RULE_CRS_LEGACY = "crs_legacy"
RULE_CRS_WGS84 = "crs_wgs84"
RULE_CRS_OTHER = "crs_other"
RULE_FIELD_MISSING = "field_missing"
RULE_FIELD_TYPE = "field_type"
RULE_CODE_DOMAIN = "code_domain"
RULE_DLMC_MISMATCH = "dlmc_mismatch"
RULE_GEOMETRY_EMPTY = "geometry_empty"
RULE_GEOMETRY_INVALID = "geometry_invalid"
RULE_BSM_DUPLICATE = "bsm_duplicate"
RULE_AREA_MISMATCH = "area_mismatch"
RULE_AREA_MISSING = "area_missing"
RULE_REQUIRED_EMPTY = "required_field_empty"

RULE_IDS = (
    RULE_CRS_MISSING,
    RULE_CRS_LEGACY,
    RULE_CRS_WGS84,
    RULE_CRS_OTHER,
    RULE_FIELD_MISSING,
    RULE_FIELD_TYPE,
    RULE_CODE_DOMAIN,
    RULE_DLMC_MISMATCH,
    RULE_GEOMETRY_EMPTY,
    RULE_GEOMETRY_INVALID,
    RULE_BSM_DUPLICATE,
    RULE_AREA_MISMATCH,
    RULE_AREA_MISSING,
    RULE_REQUIRED_EMPTY,
)

#: what people read instead of the rule ids (tables, xlsx)
RULE_NAMES_ZH = {
    RULE_CRS_MISSING: "缺少坐标系",
    RULE_CRS_LEGACY: "旧坐标系",
    RULE_CRS_WGS84: "WGS84 坐标系",
    RULE_CRS_OTHER: "非标准坐标系",
    RULE_FIELD_MISSING: "缺少必填字段",
    RULE_FIELD_TYPE: "字段类型不符",
    RULE_CODE_DOMAIN: "代码不在代码表中",
    RULE_DLMC_MISMATCH: "地类名称与编码不符",
    RULE_GEOMETRY_EMPTY: "空几何",
    RULE_GEOMETRY_INVALID: "几何无效",
    RULE_BSM_DUPLICATE: "标识码重复",
    RULE_AREA_MISMATCH: "面积与椭球面积不符",
    RULE_AREA_MISSING: "面积为空",
    RULE_REQUIRED_EMPTY: "必填字段为空",
}

AREA_TOLERANCE_ABS = 0.1  # m²
AREA_TOLERANCE_REL = 1e-6
AREA_BATCH = 4096

# legacy Gauss-Krüger code -> the CGCS2000 code of the same zone layout (domain.md §5.4)
_LEGACY_TO_CGCS2000 = {
    2359: 4523, 2360: 4524, 2361: 4525, 2380: 4544, 2381: 4545, 2382: 4546,  # Xian 1980
    2411: 4523, 2412: 4524, 2413: 4525, 2432: 4544, 2433: 4545, 2434: 4546,  # Beijing 1954
    4610: 4490, 4214: 4490,
}  # fmt: skip
_STRING_TYPES = (FieldType.String,)
_INTEGER_TYPES = (FieldType.Int, FieldType.LongLong, FieldType.UInt, FieldType.ULongLong)
_DOUBLE_TYPES = (FieldType.Double,)
_DATE_TYPES = (FieldType.Date, FieldType.DateTime)


class Progress(Protocol):
    """QgsFeedback, QgsProcessingFeedback and QgsTask all fit."""

    def isCanceled(self) -> bool: ...  # noqa: N802

    def setProgress(self, progress: float) -> Any: ...  # noqa: N802


class CheckCanceledError(Exception):
    """The user cancelled the check."""


class CheckError(Exception):
    """The layer cannot be checked; ``str(error)`` is a Chinese message for the user."""


@dataclass
class Finding:
    rule_id: str
    severity: str
    message_zh: str
    field: str = ""
    value: str = ""
    count: int = 0
    feature_ids: list[int] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckReport:
    dataset_id: str
    layer_name: str
    feature_count: int
    findings: list[Finding]
    field_mapping: dict[str, str]
    elapsed_s: float = 0.0
    crs: str = ""
    #: the project layer the findings point at (set by the caller; "" when the layer is not in a project)
    layer_id: str = ""

    @property
    def error_count(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warning_count(self) -> int:
        return sum(1 for f in self.findings if f.severity == WARNING)

    @property
    def passed(self) -> bool:
        """No error: the data may be submitted (warnings do not block)."""
        return self.error_count == 0

    def offending_ids(self) -> dict[int, list[str]]:
        """feature id -> rule ids of every finding that names the feature."""
        out: dict[int, list[str]] = defaultdict(list)
        for f in self.findings:
            for fid in f.feature_ids:
                if f.rule_id not in out[fid]:
                    out[fid].append(f.rule_id)
        return dict(out)

    def signature(self) -> list[tuple[str, str, str, int]]:
        """A comparable summary (rule, field, value, count), sorted — used to compare two runs."""
        return sorted((f.rule_id, f.field, f.value, f.count) for f in self.findings)
