"""Release dates, deadlines (obligations) and the evaluation indicators."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select, update

from exchange_server import db
from exchange_server.errors import ApiError
from exchange_server.package_check import period_year
from exchange_server.services.common import CHINA_TZ, ServiceBase, _rate, iso


class ScheduleService(ServiceBase):
    def set_release(
        self, dataset_id: str, year: int, release_date: dt.date, actor: dict | None = None
    ) -> dict:
        ds = self.catalog.get(dataset_id)
        if ds is None:
            raise ApiError("NOT_FOUND", dataset_id)
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(db.releases).where(db.releases.c.dataset_id == dataset_id, db.releases.c.year == year)
            ).first()
            values = {
                "release_date": release_date,
                "set_by": actor["username"] if actor else "cli",
                "set_at": db.utcnow(),
            }
            if exists:
                conn.execute(
                    update(db.releases)
                    .where(db.releases.c.dataset_id == dataset_id, db.releases.c.year == year)
                    .values(**values)
                )
            else:
                conn.execute(insert(db.releases).values(dataset_id=dataset_id, year=year, **values))
            db.write_audit(
                conn,
                "release.set",
                "ok",
                actor,
                "dataset:" + dataset_id,
                {"year": year, "release_date": release_date.isoformat()},
            )
        return self.release_public(dataset_id, year, release_date)

    def release_public(self, dataset_id: str, year: int, release_date: dt.date) -> dict:
        return {
            "dataset_id": dataset_id,
            "year": year,
            "release_date": release_date.isoformat(),
            "due_date": (release_date + dt.timedelta(days=self._due_days(dataset_id))).isoformat(),
        }

    def _due_days(self, dataset_id: str) -> int:
        ds = self.catalog.get(dataset_id)
        return ds.due_days if ds is not None and ds.due_days else self.config.due_days

    def list_releases(self, year: int | None = None) -> list[dict]:
        q = select(db.releases).order_by(db.releases.c.year, db.releases.c.dataset_id)
        if year:
            q = q.where(db.releases.c.year == year)
        with self.engine.connect() as conn:
            return [self.release_public(r.dataset_id, r.year, r.release_date) for r in conn.execute(q)]

    def obligations(self, region: str, year: int, as_of: dt.date) -> list[dict]:
        """What each region below ``region`` (with a submitter account) owes for ``year``, and its status."""
        with self.engine.connect() as conn:
            owners = conn.execute(
                select(db.accounts.c.region_code, db.accounts.c.department)
                .where(db.accounts.c.role == "submitter", db.accounts.c.region_code.startswith(region))
                .distinct()
            ).all()
            rel = {
                r.dataset_id: r.release_date
                for r in conn.execute(select(db.releases).where(db.releases.c.year == year))
            }
            subs = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions).where(
                        db.submissions.c.status == "accepted", db.submissions.c.region_code.startswith(region)
                    )
                ).mappings()
            ]
        subs = [s for s in subs if period_year(s["period"]) == year]
        out = []
        for reg, dept in sorted(set(owners)):
            for ds in sorted(self.catalog.datasets.values(), key=lambda d: d.id):
                if dept not in self.catalog.submit_departments(ds.id):
                    continue
                mine = [s for s in subs if s["dataset_id"] == ds.id and s["region_code"] == reg]
                item = {
                    "region_code": reg,
                    "department": dept,
                    "dataset_id": ds.id,
                    "dataset_name_zh": ds.name_zh,
                    "year": year,
                    "shared": ds.shared,
                }
                if ds.is_annual and ds.id in rel:
                    due = rel[ds.id] + dt.timedelta(days=ds.due_days or self.config.due_days)
                    first = min((db.as_utc(s["created_at"]) for s in mine), default=None)
                    first_day = first.astimezone(CHINA_TZ).date() if first else None
                    if first_day is not None:
                        status = "met" if first_day <= due else "late"
                    else:
                        status = "overdue" if as_of > due else "pending"
                    item.update(
                        kind="annual",
                        release_date=rel[ds.id].isoformat(),
                        due_date=due.isoformat(),
                        submitted_at=iso(first),
                        status=status,
                        days_left=(due - as_of).days,
                    )
                elif ds.is_monitoring:
                    required = ds.min_per_year or self.config.monitoring_min_per_year
                    periods = sorted({s["period"] for s in mine})
                    due = dt.date(year, 12, 31)
                    status = "met" if len(periods) >= required else "overdue" if as_of > due else "pending"
                    item.update(
                        kind="monitoring",
                        required_per_year=required,
                        delivered_periods=periods,
                        due_date=due.isoformat(),
                        status=status,
                        days_left=(due - as_of).days,
                    )
                else:
                    continue
                item["delivered"] = bool(mine)
                out.append(item)
        return out

    def evaluation(self, region: str, year: int, as_of: dt.date) -> dict:
        obligations = self.obligations(region, year, as_of)
        with self.engine.connect() as conn:
            subs = [
                dict(r)
                for r in conn.execute(
                    select(db.submissions).where(db.submissions.c.region_code.startswith(region))
                ).mappings()
            ]
            vers = [
                dict(r)
                for r in conn.execute(
                    select(db.versions).where(db.versions.c.region_code.startswith(region))
                ).mappings()
            ]
            vers = [v for v in vers if period_year(v["period"]) == year]
            targets = ["version:{}".format(v["id"]) for v in vers]
            downloads = []
            if targets:
                downloads = conn.execute(
                    select(db.audit.c.target, db.audit.c.department).where(
                        db.audit.c.action == "download",
                        db.audit.c.outcome == "ok",
                        db.audit.c.target.in_(targets),
                    )
                ).all()
        subs = [s for s in subs if period_year(s["period"]) == year]
        regions = sorted({o["region_code"] for o in obligations} | {s["region_code"] for s in subs})

        def indicators(reg: str | None) -> dict:
            obl = [o for o in obligations if reg is None or o["region_code"] == reg]
            ss = [s for s in subs if reg is None or s["region_code"] == reg]
            vv = [v for v in vers if reg is None or v["region_code"] == reg]
            due = [o for o in obl if o["status"] in ("met", "late", "overdue")]
            met = [o for o in obl if o["status"] == "met"]
            shared = [o for o in obl if o["shared"]]
            online = [s for s in ss if not s["offline"]]
            accepted_online = [s for s in online if s["status"] == "accepted"]
            dept_by_target = {"version:{}".format(v["id"]): v["department"] for v in vv}
            other = [
                d
                for d in downloads
                if d.target in dept_by_target and d.department != dept_by_target[d.target]
            ]
            used = {d.target for d in other}
            return {
                "obligations": len(obl),
                "timeliness": {"due": len(due), "on_time": len(met), "rate": _rate(len(met), len(due))},
                "completeness": {
                    "shared_items": len(shared),
                    "delivered": sum(1 for o in shared if o["delivered"]),
                    "rate": _rate(sum(1 for o in shared if o["delivered"]), len(shared)),
                },
                "validation": {
                    "submissions": len(online),
                    "accepted": len(accepted_online),
                    "pass_rate": _rate(len(accepted_online), len(online)),
                    "offline_registered": sum(1 for s in ss if s["offline"]),
                },
                "use": {
                    "versions": len(vv),
                    "downloads_by_other_department": len(other),
                    "versions_used_by_other_department": len(used),
                    "rate": _rate(len(used), len(vv)),
                },
                "overdue": [
                    {
                        "region_code": o["region_code"],
                        "dataset_id": o["dataset_id"],
                        "due_date": o["due_date"],
                    }
                    for o in obl
                    if o["status"] == "overdue"
                ],
            }

        return {
            "region_code": region,
            "year": year,
            "as_of": as_of.isoformat(),
            "indicators": indicators(None),
            "regions": [dict(region_code=r, **indicators(r)) for r in regions],
            "obligations": obligations,
        }
