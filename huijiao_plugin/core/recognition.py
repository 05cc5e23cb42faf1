"""Role recognition: which catalog dataset is this layer / file / folder / FileGDB / PostGIS schema?

Each layer gets a :class:`Recognition`: the dataset id (``None`` when it cannot be placed — such layers
are listed, never dropped), a confidence in 0–1, the evidence (name match, field signature, data year)
and a field mapping ``{standard name: actual field name}``. Names compare case-insensitively, with the
catalog's aliases (including Chinese names such as 地类编码) and with the layer's field aliases.

Scoring (domain.md §2: name hints *plus* characteristic fields, never the exact name alone):

* name: 1.0 for a standard layer name (years and separators ignored), 0.6 for a hint in the layer
  name, 0.4 for a hint in the file name only;
* fields: 0.5·key fields + 0.3·required fields + 0.2·all fields found;
* total = 0.45·name + 0.55·fields, adjusted ±0.15 by the data year (SJNF or a year in the name) against the
  dataset's ``year_rule``; geometry type must agree. Accepted at ``ACCEPT_THRESHOLD``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from qgis.core import (
    QgsDataSourceUri,
    QgsFeatureRequest,
    QgsProviderRegistry,
    QgsVectorLayer,
    QgsWkbTypes,
)

from huijiao_plugin.core.catalog import Catalog, DatasetSpec, get_catalog, normalize_name

log = logging.getLogger(__name__)

ACCEPT_THRESHOLD = 0.3
YEAR_FIELDS = {"SJNF", "数据年份"}
VECTOR_EXTENSIONS = {".gpkg", ".shp", ".geojson", ".json", ".sqlite", ".kml", ".tab", ".mif", ".gml", ".fgb"}
_YEAR_RE = re.compile(r"(?<!\d)(19[89]\d|20[0-9]\d)(?!\d)")
_GEOMETRIES = {
    QgsWkbTypes.GeometryType.PolygonGeometry: "polygon",
    QgsWkbTypes.GeometryType.PointGeometry: "point",
    QgsWkbTypes.GeometryType.LineGeometry: "line",
}


@dataclass
class LayerInfo:
    """What recognition needs to know about one layer of a source."""

    uri: str
    provider: str
    layer_name: str
    source_name: str = ""  # file/folder stem or schema, used as a weaker name hint
    geometry: str | None = None
    field_names: list[str] = field(default_factory=list)
    field_aliases: dict[str, str] = field(default_factory=dict)  # actual name -> alias
    field_types: dict[str, str] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)
    feature_count: int = -1
    crs_authid: str = ""
    encoding: str = ""
    error: str = ""


@dataclass
class Recognition:
    source: str
    provider: str
    layer_name: str
    dataset_id: str | None
    confidence: float
    evidence: list[str]
    field_mapping: dict[str, str]
    geometry: str | None = None
    feature_count: int = -1
    year: int | None = None
    crs: str = ""
    encoding: str = ""
    source_name: str = ""
    candidates: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def make_layer(self) -> QgsVectorLayer:
        """Open the recognised layer (with the detected encoding)."""
        return open_layer(self.source, self.provider, self.layer_name, self.encoding)


# ---- reading sources ---------------------------------------------------------------------------------------


def open_layer(uri: str, provider: str, name: str, encoding: str = "") -> QgsVectorLayer:
    layer = QgsVectorLayer(uri, name, provider)
    if encoding and layer.isValid():
        layer.setProviderEncoding(encoding)
    return layer


def detect_dbf_encoding(shp_path: str | os.PathLike) -> str:
    """'' when GDAL can decode the Shapefile's DBF itself (a .cpg is present or the text is UTF-8/ASCII),
    'GBK' when the DBF holds non-UTF-8 bytes and no .cpg says otherwise (the usual Chinese delivery)."""
    base = os.path.splitext(str(shp_path))[0]
    for ext in (".cpg", ".CPG"):
        if os.path.exists(base + ext):
            return ""
    dbf = next((base + e for e in (".dbf", ".DBF") if os.path.exists(base + e)), None)
    if dbf is None:
        return ""
    with open(dbf, "rb") as fh:
        head = fh.read(1 << 16)
    if len(head) > 29 and head[29] in (0x4D, 0x7A):  # LDID 936 (GBK), GDAL recodes itself
        return ""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the buffer
            return "GBK"
    return ""


def _geometry_name(layer: QgsVectorLayer) -> str | None:
    if not layer.isSpatial():
        return None
    return _GEOMETRIES.get(QgsWkbTypes.geometryType(layer.wkbType()))


def describe_layer(layer: QgsVectorLayer, source_name: str = "") -> LayerInfo:
    """LayerInfo of an open layer (reads one feature, without geometry, as the attribute sample)."""
    provider = layer.providerType()
    info = LayerInfo(
        uri=layer.source(),
        provider=provider,
        layer_name=layer.name(),
        source_name=source_name,
        encoding=layer.dataProvider().encoding() if layer.dataProvider() else "",
    )
    if not layer.isValid():
        info.error = "无法打开图层"
        return info
    info.geometry = _geometry_name(layer)
    info.crs_authid = layer.crs().authid() if layer.crs().isValid() else ""
    info.feature_count = int(layer.featureCount())
    for f in layer.fields():
        info.field_names.append(f.name())
        info.field_types[f.name()] = f.typeName()
        if f.alias():
            info.field_aliases[f.name()] = f.alias()
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry).setLimit(1)
    for feat in layer.getFeatures(request):
        info.sample = {name: feat[name] for name in info.field_names}
    # data year = the newest year in the layer (unchanged patches keep their old SJNF)
    for i, name in enumerate(info.field_names):
        if normalize_name(name) in YEAR_FIELDS:
            value = layer.maximumValue(i)
            if value is not None and str(value).strip() not in ("", "NULL"):
                info.sample[name] = value
    return info


def _ogr_layer_names(path: str) -> list[str]:
    from osgeo import ogr

    try:
        ds = ogr.Open(path)
    except RuntimeError:  # GDAL exceptions enabled by someone else
        return []
    if ds is None:
        return []
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    ds = None
    return names


def file_layers(path: str | os.PathLike) -> list[LayerInfo]:
    """LayerInfo for every layer of one file or FileGDB folder (Shapefile encoding detected)."""
    path = str(path)
    stem = Path(path).stem
    infos: list[LayerInfo] = []
    if path.lower().endswith(".shp"):
        encoding = detect_dbf_encoding(path)
        layer = open_layer(path, "ogr", stem, encoding)
        info = describe_layer(layer, stem)
        info.encoding = encoding or info.encoding
        return [info]
    names = _ogr_layer_names(path)
    if not names:
        return [
            LayerInfo(uri=path, provider="ogr", layer_name=stem, source_name=stem, error="无法读取该文件")
        ]
    for name in names:
        uri = f"{path}|layername={name}"
        infos.append(describe_layer(open_layer(uri, "ogr", name), stem))
    return infos


def scan_path(path: str | os.PathLike) -> list[LayerInfo]:
    """Every vector layer in a file, a FileGDB or a folder (recursively; a .gdb folder is one source)."""
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if os.path.isfile(path) or path.rstrip("/\\").lower().endswith(".gdb"):
        return file_layers(path)
    infos: list[LayerInfo] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for d in [d for d in dirs if d.lower().endswith(".gdb")]:
            infos.extend(file_layers(os.path.join(root, d)))
        dirs[:] = [d for d in dirs if not d.lower().endswith(".gdb")]
        for name in sorted(files):
            if Path(name).suffix.lower() in VECTOR_EXTENSIONS:
                infos.extend(file_layers(os.path.join(root, name)))
    return infos


def postgres_connection_uri(url_or_uri: str) -> str:
    """A QGIS connection string from ``postgresql://user:pw@host:port/db`` (other strings pass through)."""
    if not url_or_uri.startswith(("postgresql://", "postgres://")):
        return url_or_uri
    p = urlparse(url_or_uri)
    uri = QgsDataSourceUri()
    uri.setConnection(
        p.hostname or "localhost",
        str(p.port or 5432),
        (p.path or "/").lstrip("/"),
        unquote(p.username or ""),
        unquote(p.password or ""),
    )
    return uri.connectionInfo(True)


def postgres_layers(connection: str, schema: str = "public") -> list[LayerInfo]:
    """Every geometry table of ``schema``. ``connection`` is a saved QGIS connection name, a
    ``postgresql://`` URL or a QGIS connection string."""
    md = QgsProviderRegistry.instance().providerMetadata("postgres")
    conn = md.connections().get(connection) if md.connections() else None
    if conn is None:
        conn = md.createConnection(postgres_connection_uri(connection), {})
    infos: list[LayerInfo] = []
    for table in conn.tables(schema):
        geom_col = table.geometryColumn()
        uri = QgsDataSourceUri(conn.uri())
        keys = table.primaryKeyColumns()
        uri.setDataSource(schema, table.tableName(), geom_col or None, "", keys[0] if keys else "")
        if keys:
            uri.setKeyColumn(keys[0])
        layer = QgsVectorLayer(uri.uri(False), table.tableName(), "postgres")
        infos.append(describe_layer(layer, schema))
    return infos


# ---- scoring ---------------------------------------------------------------------------------------------


def map_fields(spec: DatasetSpec, info: LayerInfo) -> dict[str, str]:
    """{standard: actual field} by name, catalog alias or the layer's field alias (case-insensitive)."""
    by_name = {normalize_name(n): n for n in info.field_names}
    by_alias = {normalize_name(a): n for n, a in info.field_aliases.items()}
    used: set[str] = set()
    mapping: dict[str, str] = {}
    # exact standard names first so that an alias never steals a field that is present under its own name
    for f in spec.fields:
        actual = by_name.get(normalize_name(f.name))
        if actual and actual not in used:
            mapping[f.name] = actual
            used.add(actual)
    for f in spec.fields:
        if f.name in mapping:
            continue
        for cand in f.candidate_names()[1:] + f.candidate_names()[:1]:
            actual = by_name.get(cand) or by_alias.get(cand)
            if actual and actual not in used:
                mapping[f.name] = actual
                used.add(actual)
                break
    return mapping


def _clean_layer_name(name: str) -> str:
    n = normalize_name(name)
    n = re.sub(r"^[A-Z0-9_]+\.", "", n)  # schema prefix
    n = _YEAR_RE.sub("", n)
    return n.strip(" _-.")


def _name_score(spec: DatasetSpec, info: LayerInfo) -> tuple[float, str]:
    clean = _clean_layer_name(info.layer_name)
    if clean in {normalize_name(n) for n in spec.layer_names}:
        return 1.0, f"图层名 {info.layer_name} = 标准名"
    for hint in spec.name_hints:
        if re.search(hint, info.layer_name, re.IGNORECASE):
            return 0.6, f"图层名 {info.layer_name} 含 {hint}"
    source = info.source_name or ""
    if source and _clean_layer_name(source) in {normalize_name(n) for n in spec.layer_names}:
        return 0.5, f"文件名 {source} = 标准名"
    for hint in spec.name_hints:
        if source and re.search(hint, source, re.IGNORECASE):
            return 0.4, f"文件名 {source} 含 {hint}"
    return 0.0, ""


def _data_year(spec: DatasetSpec, info: LayerInfo, mapping: dict[str, str]) -> tuple[int | None, str]:
    rule = spec.year_rule or {}
    year_field = rule.get("field")
    if year_field and year_field in mapping:
        value = info.sample.get(mapping[year_field])
        try:
            return int(value), f"{mapping[year_field]}={int(value)}"
        except (TypeError, ValueError):
            pass
    m = _YEAR_RE.search(info.layer_name) or _YEAR_RE.search(info.source_name or "")
    if m:
        return int(m.group(1)), f"名称中的年份 {m.group(1)}"
    return None, ""


def score_dataset(spec: DatasetSpec, info: LayerInfo) -> tuple[float, list[str], dict[str, str], int | None]:
    """(confidence, evidence, field mapping, data year) of ``info`` being ``spec``."""
    if info.geometry is None or info.geometry != spec.geometry:
        return 0.0, [], {}, None
    mapping = map_fields(spec, info)
    name, name_evidence = _name_score(spec, info)
    keys = spec.key_fields or [f.name for f in spec.fields if f.required]
    required = [f.name for f in spec.fields if f.required]
    key_score = sum(1 for k in keys if k in mapping) / len(keys) if keys else 0.0
    req_score = sum(1 for k in required if k in mapping) / len(required) if required else key_score
    all_score = len(mapping) / len(spec.fields) if spec.fields else 0.0
    fields = 0.5 * key_score + 0.3 * req_score + 0.2 * all_score
    total = 0.45 * name + 0.55 * fields
    evidence = []
    if name_evidence:
        evidence.append(name_evidence)
    if mapping:
        n_keys = sum(1 for k in keys if k in mapping)
        evidence.append(f"字段特征 {n_keys}/{len(keys)} 关键字段, {len(mapping)}/{len(spec.fields)} 字段")
    year, year_evidence = _data_year(spec, info, mapping)
    rule = spec.year_rule
    if rule and year is not None and (name > 0 or fields > 0):
        if rule.get("min", 0) <= year <= rule.get("max", 9999):
            total += 0.15
            evidence.append(f"数据年份 {year_evidence} 符合")
        else:
            total -= 0.15
            evidence.append(f"数据年份 {year_evidence} 不符")
    return max(0.0, min(1.0, total)), evidence, mapping, year


def recognize_info(info: LayerInfo, catalog: Catalog | None = None) -> Recognition:
    catalog = catalog or get_catalog()
    result = Recognition(
        source=info.uri,
        provider=info.provider,
        layer_name=info.layer_name,
        dataset_id=None,
        confidence=0.0,
        evidence=[],
        field_mapping={},
        geometry=info.geometry,
        feature_count=info.feature_count,
        crs=info.crs_authid,
        encoding=info.encoding if info.provider == "ogr" and info.encoding not in ("", "UTF-8") else "",
        source_name=info.source_name,
    )
    if info.error:
        result.evidence = [info.error]
        return result
    scored = []
    for spec in catalog.ordered():
        conf, evidence, mapping, year = score_dataset(spec, info)
        scored.append((conf, spec.id, evidence, mapping, year))
    scored.sort(key=lambda s: -s[0])
    result.candidates = [(s[1], round(s[0], 3)) for s in scored[:3] if s[0] > 0]
    if not scored or scored[0][0] < ACCEPT_THRESHOLD:
        result.evidence = ["无法确定数据集"] + (scored[0][2] if scored and scored[0][0] > 0 else [])
        if info.geometry is None:
            result.evidence.append("无几何(属性表)")
        return result
    conf, ds_id, evidence, mapping, year = scored[0]
    result.dataset_id = ds_id
    result.confidence = round(conf, 3)
    result.evidence = evidence
    result.field_mapping = mapping
    result.year = year
    return result


def recognize_layer(layer: QgsVectorLayer, catalog: Catalog | None = None) -> Recognition:
    return recognize_info(describe_layer(layer), catalog)


def recognize_path(path: str | os.PathLike, catalog: Catalog | None = None) -> list[Recognition]:
    """Recognise every layer of a file, FileGDB or folder (recursive); unplaced: dataset_id None."""
    catalog = catalog or get_catalog()
    return [recognize_info(info, catalog) for info in scan_path(path)]


def recognize_postgres(
    connection: str, schema: str = "public", catalog: Catalog | None = None
) -> list[Recognition]:
    catalog = catalog or get_catalog()
    return [recognize_info(info, catalog) for info in postgres_layers(connection, schema)]


def _rank(r: Recognition) -> tuple:
    return (r.year or 0, r.confidence, ".gpkg" in r.source.lower(), r.feature_count)


def best_by_dataset(results: list[Recognition]) -> dict[str, Recognition]:
    """Per dataset the newest data year, then the most confident recognition (GeoPackage preferred on ties:
    it keeps types and encoding)."""
    best: dict[str, Recognition] = {}
    for r in results:
        if r.dataset_id is None:
            continue
        cur = best.get(r.dataset_id)
        if cur is None or _rank(r) > _rank(cur):
            best[r.dataset_id] = r
    return best


def other_years(results: list[Recognition]) -> dict[str, list[Recognition]]:
    """Per dataset, the best recognition of every *older* data year than the one ``best_by_dataset`` picks."""
    best = best_by_dataset(results)
    out: dict[str, dict[int, Recognition]] = {}
    for r in results:
        if r.dataset_id is None or r.year is None or r is best[r.dataset_id]:
            continue
        if r.year == best[r.dataset_id].year:
            continue
        cur = out.setdefault(r.dataset_id, {}).get(r.year)
        if cur is None or _rank(r) > _rank(cur):
            out[r.dataset_id][r.year] = r
    return {d: [years[y] for y in sorted(years, reverse=True)] for d, years in out.items()}
