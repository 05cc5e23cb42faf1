"""Request bodies (pydantic models) of the JSON routes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

MAX_TTL = 10 * 366 * 24 * 3600  # ten years: a token's lifetime, whoever asks


class LoginBody(BaseModel):
    username: str
    password: str
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_TTL)


class CommitBody(BaseModel):
    upload_id: str = Field(max_length=64)  # the server's ids are 32 hex digits
    package_sha256: str = Field(max_length=64)
    manifest: dict[str, Any]


class OfflineBody(BaseModel):
    package_sha256: str = Field(max_length=64)
    package_size: int = 0
    manifest: dict[str, Any]
    offline: bool = True


class AccountBody(BaseModel):
    username: str
    password: str
    department: str
    region_code: str
    role: str
    display_name: str = ""
    unit: str = ""


class AccountUpdateBody(BaseModel):
    disabled: bool | None = None
    password: str | None = None
    role: str | None = None


class TokenBody(BaseModel):
    username: str
    ttl_seconds: int | None = Field(None, ge=1, le=MAX_TTL)


class RevokeBody(BaseModel):
    username: str


class ReleaseBody(BaseModel):
    dataset_id: str
    year: int = Field(ge=1990, le=2200)
    release_date: dt.date
