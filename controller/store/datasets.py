"""The data set catalogue (ids, owners, locations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select

from controller.store import schema as t
from controller.store.base import StoreBase


class DatasetsRepo(StoreBase):
    def insert_dataset(self, conn: Connection, row: dict[str, Any]) -> None:
        """Insert a data set in ``conn``'s transaction (an existing id: IntegrityError)."""
        conn.execute(insert(t.datasets).values(**row))

    def datasets_on(self, conn: Connection, cluster: str) -> list[str]:
        """Ids of the data sets with a copy on ``cluster``, inside ``conn``'s transaction (the
        catalogue is small; its locations are a JSON list, filtered here on both databases)."""
        rows = conn.execute(select(t.datasets.c.id, t.datasets.c.locations).order_by(t.datasets.c.id))
        return [r.id for r in rows if isinstance(r.locations, list) and cluster in r.locations]

    def get_dataset(self, ds_id: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(select(t.datasets).where(t.datasets.c.id == ds_id)).mappings().first()
            return dict(row) if row else None

    def list_datasets(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [
                dict(r) for r in conn.execute(select(t.datasets).order_by(t.datasets.c.id)).mappings().all()
            ]

    def count_datasets(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.datasets)).scalar() or 0)
