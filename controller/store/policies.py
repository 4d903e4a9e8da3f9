"""Policies, versioned per kind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from controller.store import audit_chain
from controller.store import schema as t
from controller.store.base import StoreBase, now


class PoliciesRepo(StoreBase):
    def get_policies(self) -> dict[str, dict[str, Any]]:
        with self.read() as conn:
            return {
                r.kind: {"version": r.version, "body": r.body} for r in conn.execute(select(t.policies)).all()
            }

    def seed_policy(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store ``body`` as version 1 of ``kind`` unless the kind is stored already; returns
        the stored body. Processes seeding at once agree on one row and never raise the version."""
        for _ in range(2):  # under PostgreSQL a concurrent insert shows as an IntegrityError once
            try:
                with self.tx() as conn:
                    cur = conn.execute(select(t.policies.c.body).where(t.policies.c.kind == kind)).first()
                    if cur is not None:
                        stored: dict[str, Any] = cur[0]
                        return stored
                    conn.execute(insert(t.policies).values(kind=kind, version=1, body=body, updated_at=now()))
                    return body
            except IntegrityError:
                continue
        raise RuntimeError(f"could not seed the {kind} policy")

    def put_policy(self, kind: str, body: dict[str, Any], *, audit: dict[str, Any] | None = None) -> int:
        """Store a new version of a policy; ``audit``: the change's audit row, appended in the
        same transaction with the new version in its detail."""
        with self.tx() as conn:
            cur = conn.execute(select(t.policies.c.version).where(t.policies.c.kind == kind)).first()
            version = (cur[0] + 1) if cur else 1
            if cur:
                conn.execute(
                    update(t.policies)
                    .where(t.policies.c.kind == kind)
                    .values(version=version, body=body, updated_at=now())
                )
            else:
                conn.execute(
                    insert(t.policies).values(kind=kind, version=version, body=body, updated_at=now())
                )
            audit_chain.record(conn, audit, version=version)
            return version

    def policy_versions(self) -> dict[str, int]:
        with self.read() as conn:
            return {
                str(r[0]): int(r[1]) for r in conn.execute(select(t.policies.c.kind, t.policies.c.version))
            }
