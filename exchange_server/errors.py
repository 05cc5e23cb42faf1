"""Error and finding codes with Chinese (user) and English messages; documented in the protocol."""

from __future__ import annotations

# code -> (HTTP status, message_zh, message_en)
ERRORS: dict[str, tuple[int, str, str]] = {
    "AUTH_REQUIRED": (401, "需要登录：请提供有效的访问令牌。", "Authentication required."),
    "AUTH_INVALID": (401, "用户名或密码错误。", "Wrong user name or password."),
    "TOKEN_INVALID": (401, "访问令牌无效，请重新登录。", "Invalid token."),
    "TOKEN_EXPIRED": (401, "访问令牌已过期，请重新登录。", "Token expired."),
    "TOKEN_REVOKED": (401, "访问令牌已被吊销，请重新登录。", "Token revoked."),
    "ACCOUNT_DISABLED": (403, "账号已停用，请联系管理员。", "Account disabled."),
    "FORBIDDEN_ROLE": (
        403,
        "当前账号的角色无权执行此操作。",
        "The account's role does not allow this action.",
    ),
    "FORBIDDEN_DEPARTMENT": (
        403,
        "本部门无权提交该数据集（数据集属于其他部门）。",
        "The dataset is not owned by the account's department.",
    ),
    "FORBIDDEN_REGION": (403, "无权访问本账号辖区以外的行政区数据。", "Region outside the account's region."),
    "FORBIDDEN_DATASET": (403, "无权读取该数据集。", "Not allowed to read this dataset."),
    "NOT_FOUND": (404, "请求的资源不存在。", "Not found."),
    "UPLOAD_NOT_FOUND": (404, "上传任务不存在或已终止，请重新上传。", "Upload not found."),
    "UPLOAD_EXPIRED": (410, "上传任务已过期，请重新上传。", "Upload expired."),
    "UPLOAD_OFFSET_MISMATCH": (
        409,
        "上传偏移量与服务器记录不一致，请先查询进度后续传。",
        "Upload-Offset does not match the server's offset.",
    ),
    "UPLOAD_LOCKED": (
        423,
        "该上传任务正在被另一个连接写入，请稍后重试。",
        "Upload is being written by another request.",
    ),
    "UPLOAD_TOO_LARGE": (
        413,
        "文件超过服务器允许的最大上传大小。",
        "Upload larger than the server's maximum.",
    ),
    "UPLOAD_BEYOND_LENGTH": (400, "上传的数据超过声明的文件长度。", "More bytes than Upload-Length."),
    "UPLOAD_TOO_MANY": (
        429,
        "同时进行的上传任务过多，请等待其他上传完成或取消后再试。",
        "Too many concurrent uploads for this account.",
    ),
    "QUOTA_EXCEEDED": (
        413,
        "本账号占用的存储已达上限（进行中、未提交和已接收的数据包），请先提交或取消未完成的上传。",
        "Account storage quota exceeded.",
    ),
    "UPLOAD_INCOMPLETE": (409, "上传尚未完成，不能提交。", "Upload not complete."),
    "UPLOAD_ALREADY_COMMITTED": (409, "该上传已被提交。", "Upload already committed."),
    "CHECKSUM_MISMATCH": (
        460,
        "数据块校验和不一致，数据块已丢弃，请重传该数据块。",
        "Chunk checksum mismatch.",
    ),
    "CHECKSUM_ALGORITHM": (
        400,
        "不支持的校验算法，请使用 sha1 或 sha256。",
        "Unsupported checksum algorithm.",
    ),
    "TUS_VERSION": (412, "不支持的 tus 协议版本，请使用 1.0.0。", "Unsupported Tus-Resumable version."),
    "CONTENT_TYPE": (
        415,
        "上传数据的 Content-Type 必须为 application/offset+octet-stream。",
        "Content-Type must be application/offset+octet-stream.",
    ),
    "REQUEST_INVALID": (400, "请求参数不正确。", "Invalid request."),
    "DATASET_UNKNOWN": (400, "共享清单中没有该数据集，请检查数据集编号。", "Dataset not in the catalog."),
    "MANIFEST_INVALID": (400, "清单（manifest）缺少必填项或格式错误。", "Manifest invalid."),
    "REGION_INVALID": (400, "行政区代码格式错误。", "Invalid region code."),
    "PACKAGE_HASH_MISMATCH": (
        422,
        "上传文件的 SHA-256 与声明的不一致，文件可能在传输中损坏，请重新上传。",
        "Uploaded bytes do not match the claimed package sha256.",
    ),
    "PACKAGE_SUBMITTED_BY_OTHER": (
        409,
        "该数据包已由其他账号提交。",
        "Package already submitted by another account.",
    ),
    "PACKAGE_OWNED_BY_OTHER": (
        403,
        "该数据包属于其他部门，本部门不能登记。",
        "The package belongs to another department.",
    ),
    "ACCOUNT_EXISTS": (409, "账号已存在。", "Account already exists."),
    "RANGE_NOT_SATISFIABLE": (416, "请求的字节范围无效。", "Range not satisfiable."),
    "LOGIN_THROTTLED": (429, "登录失败次数过多，请稍后再试。", "Too many failed logins; try again later."),
    "BODY_TOO_LARGE": (413, "请求数据超过服务器允许的大小。", "Request body too large."),
    "STORAGE_UNAVAILABLE": (
        503,
        "服务器存储暂时不可用（如磁盘已满），请稍后重试；已上传的数据不会丢失。",
        "Storage temporarily unavailable.",
    ),
    "DATABASE_BUSY": (503, "服务器数据库繁忙，请稍后重试。", "Database busy."),
    "TEMPORARILY_UNAVAILABLE": (503, "服务器暂时无法处理该请求，请稍后重试。", "Temporarily unavailable."),
    "INTERNAL": (500, "服务器内部错误，请稍后重试或联系管理员。", "Internal server error."),
}

# Findings written into receipts: code -> (severity, message_zh)
FINDINGS: dict[str, tuple[str, str]] = {
    "NOT_A_ZIP": ("error", "数据包不是有效的 zip 文件。"),
    "ZIP_UNSAFE_PATH": ("error", "数据包含有不安全的路径（绝对路径或“..”）。"),
    "ZIP_SYMLINK": ("error", "数据包含有符号链接。"),
    "ZIP_DUPLICATE_ENTRY": ("error", "数据包中有重复的文件名。"),
    "ZIP_TOO_MANY_FILES": ("error", "数据包中的文件数量超过上限。"),
    "ZIP_TOO_LARGE": ("error", "数据包解压后的总大小超过上限（疑似压缩炸弹）。"),
    "ZIP_RATIO": ("error", "数据包压缩比异常（疑似压缩炸弹）。"),
    "ZIP_CORRUPT": ("error", "数据包中的文件损坏（CRC 校验失败）。"),
    "ZIP_ENCRYPTED": ("error", "数据包中有加密的文件，服务器无法检查。"),
    "ZIP_METHOD_UNSUPPORTED": ("error", "数据包中有不支持的压缩方式（只支持存储和 deflate）。"),
    "MANIFEST_MISSING": ("error", "数据包中缺少 manifest.json。"),
    "MANIFEST_MISMATCH": ("error", "数据包内的 manifest.json 与提交时的清单不一致。"),
    "MANIFEST_FORMAT": ("error", "不支持的清单格式版本。"),
    "EXTRA_FILE": ("error", "数据包中含有清单未列出的文件。"),
    "MISSING_FILE": ("error", "清单列出的文件在数据包中不存在。"),
    "FILE_SIZE_MISMATCH": ("error", "文件大小与清单不一致。"),
    "FILE_HASH_MISMATCH": ("error", "文件 SHA-256 与清单不一致。"),
    "NOT_GEOPACKAGE": ("error", "数据文件不是有效的 GeoPackage。"),
    "GPKG_STRUCTURE": ("error", "GeoPackage 结构不完整（缺少 gpkg_contents 等系统表）。"),
    "LAYER_MISSING": ("error", "GeoPackage 中缺少清单列出的图层。"),
    "LAYER_NAME_UNKNOWN": ("error", "图层名称不符合共享清单中该数据集的标准图层名。"),
    "FEATURE_COUNT_MISMATCH": ("error", "图层要素数量与清单不一致。"),
    "CRS_NOT_CGCS2000": ("error", "坐标系不是 CGCS2000（EPSG:4490、4491–4554）。"),
    "CRS_MISMATCH": ("error", "图层坐标系与清单声明的坐标系不一致。"),
    "FIELD_MISSING": ("error", "缺少共享清单要求的必填字段。"),
    "GEOMETRY_TYPE_MISMATCH": ("warning", "图层几何类型与清单或共享清单不一致。"),
    "DATASET_UNKNOWN": ("error", "共享清单中没有该数据集。"),
    "NO_LAYERS": ("error", "清单中没有任何图层。"),
    "VALIDATION_ERRORS": ("error", "客户端预检报告了错误，数据包不能被接受。"),
    "VALIDATION_WARNINGS": ("warning", "客户端预检报告了警告。"),
    "GPKG_EXTRA_LAYER": ("warning", "GeoPackage 中含有清单未列出的图层。"),
    "FINDINGS_TRUNCATED": ("info", "问题过多，回执只列出前 199 条；其余条数见说明。"),
    "OFFLINE_REGISTERED": ("info", "离线交换的数据包已登记；服务器未收到文件，仅核对了清单。"),
    "PERIOD_INVALID": ("error", "期次格式错误（应为 2025、2025H1 或 2025Q3）。"),
}


# seconds a client waits before repeating a request answered with this status
RETRY_AFTER = {429: 30, 503: 5}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message_zh", "message"}}`` with the code's HTTP status."""

    def __init__(self, code: str, detail: str | None = None, headers: dict[str, str] | None = None) -> None:
        status, zh, en = ERRORS.get(code, ERRORS["INTERNAL"])
        super().__init__(code)
        self.code = code
        self.status = status
        self.message_zh = zh
        self.message = en if not detail else f"{en} ({detail})"
        self.detail = detail
        self.headers = headers or {}
        if status in RETRY_AFTER:  # a transient answer always says when to try again (protocol section 15)
            self.headers.setdefault("Retry-After", str(RETRY_AFTER[status]))

    def body(self) -> dict:
        err = {"code": self.code, "message_zh": self.message_zh, "message": self.message}
        return {"error": err}


def finding(code: str, detail: str = "", **extra: object) -> dict:
    severity, zh = FINDINGS[code]
    item: dict = {
        "code": code,
        "severity": severity,
        "message_zh": zh if not detail else f"{zh}（{detail}）",
    }
    for key, value in extra.items():
        if value is not None:
            item[key] = value
    return item
