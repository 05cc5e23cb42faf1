"""Accounts, passwords, tokens and authentication."""

from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from exchange_server import db
from exchange_server.authz import ROLES
from exchange_server.catalog import DEPARTMENTS
from exchange_server.errors import ApiError
from exchange_server.regions import RegionCodeError, normalise
from exchange_server.security import hash_password, new_token, token_hash, verify_password
from exchange_server.services.common import ServiceBase, account_public, iso

# a password hash checked for unknown users, so that they cost the same time as known ones
DUMMY_HASH = hash_password("no such user: constant-time answer")


def normalise_username(name: str) -> str:
    """User names compare after NFKC, case folding and stripping ('ＡＢＣ', ' Abc ' and 'abc' are one)."""
    return unicodedata.normalize("NFKC", str(name or "")).casefold().strip()


class AccountService(ServiceBase):
    def create_account(
        self,
        username: str,
        password: str,
        department: str,
        region_code: str,
        role: str,
        display_name: str = "",
        unit: str = "",
        actor: dict | None = None,
    ) -> dict:
        if department not in DEPARTMENTS:
            raise ApiError("REQUEST_INVALID", "department must be one of {}".format(", ".join(DEPARTMENTS)))
        if role not in ROLES:
            raise ApiError("REQUEST_INVALID", "role must be one of {}".format(", ".join(ROLES)))
        username = normalise_username(username)
        if not username or len(password) < 8:
            raise ApiError("REQUEST_INVALID", "username required, password at least 8 characters")
        if len(username) > 64 or any(c == ":" or not c.isprintable() for c in username):
            raise ApiError("REQUEST_INVALID", "username: at most 64 printable characters, no ':'")
        try:
            region = normalise(region_code)
        except RegionCodeError:
            raise ApiError("REGION_INVALID", str(region_code))
        values = {
            "username": username,
            "password_hash": hash_password(password),
            "department": department,
            "region_code": region,
            "role": role,
            "display_name": display_name,
            "unit": unit,
            "disabled": False,
            "created_at": db.utcnow(),
        }
        try:
            with self.engine.begin() as conn:
                res = conn.execute(insert(db.accounts).values(**values))
                values["id"] = res.inserted_primary_key[0]
                db.write_audit(conn, "account.create", "ok", actor, "account:" + username, {"role": role})
        except IntegrityError:
            raise ApiError("ACCOUNT_EXISTS", username)
        return account_public(values)

    def update_account(
        self,
        username: str,
        disabled: bool | None = None,
        password: str | None = None,
        actor: dict | None = None,
        role: str | None = None,
    ) -> dict:
        """Disable/enable an account, set its password or its role (an admin action, audited). A new password
        or role revokes the account's tokens: whoever held them must log in again."""
        values: dict = {}
        if role is not None:
            if role not in ROLES:
                raise ApiError("REQUEST_INVALID", "role must be one of {}".format(", ".join(ROLES)))
            values["role"] = role
        if disabled is not None:
            values["disabled"] = bool(disabled)
        if password is not None:
            if len(password) < 8:
                raise ApiError("REQUEST_INVALID", "password at least 8 characters")
            values["password_hash"] = hash_password(password)
        with self.engine.begin() as conn:
            account = self.get_account(conn, username)
            if account is None:
                raise ApiError("NOT_FOUND", username)
            revoke = "password_hash" in values or values.get("role", account["role"]) != account["role"]
            if values:
                conn.execute(update(db.accounts).where(db.accounts.c.id == account["id"]).values(**values))
                account.update(values)
            detail = {"disabled": values.get("disabled"), "password_changed": "password_hash" in values}
            if revoke:
                res = conn.execute(
                    update(db.tokens)
                    .where(db.tokens.c.account_id == account["id"], db.tokens.c.revoked_at.is_(None))
                    .values(revoked_at=db.utcnow())
                )
                detail["tokens_revoked"] = res.rowcount
            if "role" in values:
                detail["role"] = values["role"]
            db.write_audit(conn, "account.update", "ok", actor, "account:" + username, detail)
        return account_public(account)

    def list_accounts(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(db.accounts).order_by(db.accounts.c.id)).mappings().all()
        return [account_public(dict(r)) for r in rows]

    def get_account(self, conn: Connection, username: str) -> dict | None:
        username = normalise_username(username)
        row = conn.execute(select(db.accounts).where(db.accounts.c.username == username)).mappings().first()
        return dict(row) if row else None

    def issue_token(
        self, username: str, ttl_seconds: int | None = None, note: str = "", actor: dict | None = None
    ):
        ttl = self.config.token_ttl_seconds if ttl_seconds is None else int(ttl_seconds)
        token = new_token()
        now = db.utcnow()
        expires = now + dt.timedelta(seconds=ttl)
        with self.engine.begin() as conn:
            account = self.get_account(conn, username)
            if account is None:
                raise ApiError("NOT_FOUND", username)
            conn.execute(
                insert(db.tokens).values(
                    token_hash=token_hash(token),
                    account_id=account["id"],
                    created_at=now,
                    expires_at=expires,
                    note=note,
                )
            )
            db.write_audit(conn, "token.issue", "ok", actor or account, "account:" + username, {"ttl": ttl})
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_at": iso(expires),
            "account": account_public(account),
        }

    def login(self, username: str, password: str, ttl_seconds: int | None, client_ip: str = "") -> dict:
        """Throttled per account and per address (429 LOGIN_THROTTLED, whatever the password); an unknown
        user costs the same password hash as a known one; a disabled account is told as a wrong password."""
        username = normalise_username(username)
        by_account, by_address = self.login_guard
        # the address is checked (its count grows only by failures: many users behind one NAT who log in
        # right are never throttled), the account's try is reserved before its password is checked
        wait = by_address.retry_after(client_ip) or by_account.failed(username)
        if wait:
            self.audit_unauthenticated("login", "throttled", "account:" + username, {}, client_ip)
            raise ApiError("LOGIN_THROTTLED", f"retry after {wait} s", headers={"Retry-After": str(wait)})
        with self.engine.connect() as conn:
            account = self.get_account(conn, username)
        ok = verify_password(password, account["password_hash"] if account else DUMMY_HASH)
        if account is None or not ok or account["disabled"]:
            by_address.failed(client_ip)
            self.audit_unauthenticated("login", "refused", "account:" + username, {}, client_ip)
            raise ApiError("AUTH_INVALID")
        by_account.succeeded(username)
        ttl = self.config.token_ttl_seconds
        if ttl_seconds is not None:
            ttl = max(1, min(int(ttl_seconds), self.config.token_ttl_seconds))
        return self.issue_token(username, ttl, "login")

    def audit_unauthenticated(self, action: str, outcome: str, target: str, detail: dict, ip: str) -> None:
        """A record of a request without a valid account (table unauth_audit), within the address's budget."""
        self.audit_budget.record(action, outcome, target, detail, ip)

    def revoke_tokens(
        self, username: str | None = None, token: str | None = None, actor: dict | None = None
    ) -> int:
        with self.engine.begin() as conn:
            cond = db.tokens.c.revoked_at.is_(None)
            if token is not None:
                cond = and_(cond, db.tokens.c.token_hash == token_hash(token))
            else:
                account = self.get_account(conn, username or "")
                if account is None:
                    raise ApiError("NOT_FOUND", username)
                cond = and_(cond, db.tokens.c.account_id == account["id"])
            res = conn.execute(update(db.tokens).where(cond).values(revoked_at=db.utcnow()))
            db.write_audit(
                conn, "token.revoke", "ok", actor, "account:" + (username or ""), {"count": res.rowcount}
            )
            return res.rowcount

    def authenticate(self, token: str | None, client_ip: str = "") -> dict:
        if not token:
            raise ApiError("AUTH_REQUIRED")
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(db.tokens, db.accounts)
                    .join(db.accounts, db.accounts.c.id == db.tokens.c.account_id)
                    .where(db.tokens.c.token_hash == token_hash(token))
                )
                .mappings()
                .first()
            )
        code = None
        if row is None:
            code = "TOKEN_INVALID"
        elif row["revoked_at"] is not None:
            code = "TOKEN_REVOKED"
        elif db.as_utc(row["expires_at"]) <= db.utcnow():
            code = "TOKEN_EXPIRED"
        elif row["disabled"]:
            code = "ACCOUNT_DISABLED"
        if code:
            self.audit_unauthenticated("auth", "refused", "", {"code": code}, client_ip)
            raise ApiError(code)
        account = {k: row[k] for k in ("username", "password_hash", "department", "region_code", "role")}
        account.update(
            id=row["account_id"], display_name=row["display_name"], unit=row["unit"], disabled=False
        )
        return account
