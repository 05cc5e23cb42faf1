"""Where the counties of a province come from: a folder of county GeoPackages, or PostGIS tables with a
county code column.

A county is a 6-digit code, its area (the union of its XZQ townships: the partition of the province) and, per
role, a layer source (provider key + URI) that a worker process opens itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from qgis.core import QgsDataSourceUri, QgsGeometry, QgsVectorLayer

# role -> table / layer names looked for in a county source (upper case; first match wins)
ROLE_TABLES: dict[str, tuple[str, ...]] = {
    "DLTB": ("DLTB",),
    "DLTB_N1": ("DLTB_N1",),
    "PBF": ("YJJBNTBHTB", "YJJBNTTB", "JBNTBHTB"),
    "HSF": ("GBZNT",),
    "STBHHX": ("STBHHX",),
    "YZGHQ": ("YZGHQ",),
    "TRHJZL": ("TRHJZL",),
    "JCTB": ("JCTB",),
    "XZQ": ("XZQ",),
    "CJDCQ": ("CJDCQ",),
    "A": ("A",),
    "B": ("B",),
}
CODE_RE = re.compile(r"(?<!\d)(\d{6})(?!\d)")


class SourceError(Exception):
    """The province source cannot be read at all (a single county's problem is a :class:`BrokenCounty`)."""


@dataclass
class County:
    code: str
    layers: dict[str, tuple[str, str]]  # role -> (provider key, uri)
    area_wkb: bytes = b""  # union of the county's XZQ polygons

    @property
    def city(self) -> str:
        return self.code[:4]


@dataclass
class BrokenCounty:
    code: str
    reason: str


@dataclass
class Discovery:
    counties: list[County] = field(default_factory=list)
    broken: list[BrokenCounty] = field(default_factory=list)


def open_layer(provider: str, uri: str, name: str = "") -> QgsVectorLayer:
    return QgsVectorLayer(uri, name or "layer", provider)


def _area(layer: QgsVectorLayer) -> QgsGeometry:
    geoms = [f.geometry() for f in layer.getFeatures() if f.hasGeometry()]
    return QgsGeometry.unaryUnion(geoms) if geoms else QgsGeometry()


def discover(source: str, code_column: str = "county_code") -> Discovery:
    """Counties of ``source``: a folder path, or a PostgreSQL URI (``postgresql://…`` or a QGIS
    ``dbname=… schema=…`` string) whose tables carry ``code_column``."""
    if source.startswith(("postgresql://", "postgres://", "dbname=", "service=", "PG:")):
        return discover_postgis(source, code_column)
    return discover_folder(Path(source))


# --- folder of county GeoPackages ---------------------------------------------------------------------------


def _gpkg_layers(path: Path) -> dict[str, str]:
    """upper-case layer name -> layer name in the GeoPackage (empty when it cannot be opened)."""
    layer = QgsVectorLayer(str(path), "probe", "ogr")
    if not layer.isValid():
        return {}
    names = {}
    for sub in layer.dataProvider().subLayers():
        # "index!!::!!name!!::!!count!!::!!geometry type…"
        parts = sub.split("!!::!!")
        if len(parts) > 1:
            names[parts[1].upper()] = parts[1]
    return names


def _code_from_xzq(layer: QgsVectorLayer) -> str:
    for f in layer.getFeatures():
        for key in ("XZQDM", "QSDWDM", "ZLDWDM"):
            if layer.fields().indexOf(key) >= 0:
                value = str(f[key] or "")
                if len(value) >= 6 and value[:6].isdigit():
                    return value[:6]
    return ""


def discover_folder(folder: Path) -> Discovery:
    if not folder.is_dir():
        raise SourceError(f"不是文件夹: {folder}")
    out = Discovery()
    for path in sorted(folder.glob("*.gpkg")):
        match = CODE_RE.search(path.stem)
        names = _gpkg_layers(path)
        code = match.group(1) if match else ""
        if not names:
            out.broken.append(BrokenCounty(code or path.stem, f"无法打开 GeoPackage: {path.name}"))
            continue
        layers = {}
        for role, candidates in ROLE_TABLES.items():
            for candidate in candidates:
                if candidate in names:
                    layers[role] = ("ogr", f"{path}|layername={names[candidate]}")
                    break
        if "XZQ" not in layers:
            out.broken.append(BrokenCounty(code or path.stem, f"缺少 XZQ 图层（县界）: {path.name}"))
            continue
        xzq = open_layer(*layers["XZQ"])
        code = code or _code_from_xzq(xzq)
        if not code:
            out.broken.append(BrokenCounty(path.stem, f"文件名和 XZQ 图层中都没有 6 位县级代码: {path.name}"))
            continue
        area = _area(xzq)
        if area.isEmpty():
            out.broken.append(BrokenCounty(code, f"XZQ 图层为空或几何无效: {path.name}"))
            continue
        out.counties.append(County(code, layers, bytes(area.asWkb())))
    return out


# --- PostGIS: province tables with a county code column -----------------------------------------------------


def _pg_uri(source: str) -> tuple[QgsDataSourceUri, str]:
    """(connection URI, schema) of ``postgresql://user:pw@host:port/db?schema=s`` or a QGIS URI string."""
    text = source[3:] if source.startswith("PG:") else source
    schema = "public"
    if text.startswith(("postgresql://", "postgres://")):
        from urllib.parse import parse_qs, urlparse  # noqa: PLC0415 (only for this form)

        url = urlparse(text)
        schema = parse_qs(url.query).get("schema", ["public"])[0]
        uri = QgsDataSourceUri()
        uri.setConnection(
            url.hostname or "localhost",
            str(url.port or 5432),
            url.path.lstrip("/"),
            url.username or "",
            url.password or "",
        )
        return uri, schema
    uri = QgsDataSourceUri(text)
    return uri, uri.schema() or schema


def discover_postgis(source: str, code_column: str = "county_code") -> Discovery:
    from qgis.core import QgsProviderRegistry  # noqa: PLC0415

    uri, schema = _pg_uri(source)
    meta = QgsProviderRegistry.instance().providerMetadata("postgres")
    try:
        conn = meta.createConnection(uri.uri(False), {})
        tables = {t.tableName().upper(): t.tableName() for t in conn.tables(schema)}
    except Exception as exc:  # the provider raises QgsProviderConnectionException
        raise SourceError(f"无法连接 PostGIS: {exc}") from exc
    roles: dict[str, tuple[str, str]] = {}  # role -> (table, geometry column)
    for role, candidates in ROLE_TABLES.items():
        for candidate in candidates:
            if candidate in tables:
                table = tables[candidate]
                geom = conn.table(schema, table).geometryColumn()
                roles[role] = (table, geom)
                break
    if "XZQ" not in roles:
        raise SourceError(f"PostGIS 模式 {schema} 中没有 XZQ 表（县界）")
    rows = conn.executeSql(
        f'SELECT DISTINCT "{code_column}" FROM "{schema}"."{roles["XZQ"][0]}" ORDER BY 1'  # noqa: S608
    )
    out = Discovery()
    for (code,) in rows:
        code = str(code)
        layers = {}
        for role, (table, geom) in roles.items():
            layer_uri = QgsDataSourceUri(uri)
            layer_uri.setDataSource(schema, table, geom, f"\"{code_column}\" = '{code}'")
            layers[role] = ("postgres", layer_uri.uri(False))
        area = _area(open_layer(*layers["XZQ"]))
        if area.isEmpty():
            out.broken.append(BrokenCounty(code, "XZQ 表中该县没有有效的面"))
            continue
        out.counties.append(County(code, layers, bytes(area.asWkb())))
    return out
