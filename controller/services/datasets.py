"""The data-set catalogue: registering a data set (its locations checked against the registered
clusters and the residency floor) and reading it from the in-memory view. Dependencies: the
store, the cluster registry, the current residency policy and the view it keeps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from controller.datasets import DatasetCreate, DatasetRead
from controller.errors import Conflict, InvalidInput, NotFound
from controller.policies import Movement, ResidencyPolicy
from controller.registry import Registry
from controller.store import audit_chain
from controller.store.store import Store, now
from controller.topology.model import Tier


def dataset_read(row: dict[str, Any]) -> DatasetRead:
    return DatasetRead.model_validate({k: row[k] for k in DatasetRead.model_fields})


class DatasetCatalogue:
    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        registry: Registry,
        residency: Callable[[], ResidencyPolicy],
        view: dict[str, DatasetRead],
    ) -> None:
        """``residency``: the policy in force (swapped by PUT /v1/policies); ``view``: the
        catalogue in memory, id -> data set, shared with the follower that adds other
        processes' registrations to it."""
        self.store = store
        self.lock = lock
        self.registry = registry
        self.residency = residency
        self.view = view

    def add(self, ds: DatasetCreate, audit: dict[str, Any] | None = None) -> tuple[DatasetRead, bool]:
        """Catalogue a data set (``audit`` appended in its transaction); the same body again is
        a no-op (False), another body under the same id a conflict. Its locations are checked
        against the views first (a clear answer without a transaction), then again against the
        stored clusters, their rows share-locked, in the insert's transaction: a concurrent
        re-registration or deregistration of a location cannot slip between check and insert."""
        self.check_locations(ds, self._identities_in_memory(ds.locations))
        row = {**ds.model_dump(mode="json"), "created_at": now()}
        try:
            with self.store.tx() as conn:
                stored = self.store.cluster_specs(conn, ds.locations, lock="key-share")
                self.check_locations(
                    ds,
                    {n: (spec.get("tenant"), str(spec.get("tier"))) for n, spec in stored.items()},
                )
                self.store.insert_dataset(conn, row)
                audit_chain.record(conn, audit)
        except IntegrityError:
            existing = self.store.get_dataset(ds.id)
            if existing is None:
                raise
            stored_ds = dataset_read(existing)
            if stored_ds.model_dump() != DatasetRead.model_validate(ds.model_dump()).model_dump():
                raise Conflict(f"data set {ds.id!r} exists with different contents") from None
            return stored_ds, False
        read = DatasetRead.model_validate(ds.model_dump())
        with self.lock:
            self.view[ds.id] = read
        return read, True

    def get(self, ds_id: str) -> DatasetRead:
        ds = self.view.get(ds_id)
        if ds is None:
            raise NotFound(f"data set {ds_id!r} not found")
        return ds

    def _identities_in_memory(self, names: list[str]) -> dict[str, tuple[str | None, str]]:
        clusters = self.registry.clusters
        return {n: (clusters[n].spec.tenant, clusters[n].spec.tier.value) for n in names if n in clusters}

    def check_locations(self, ds: DatasetCreate, identity: dict[str, tuple[str | None, str]]) -> None:
        """Every location a registered cluster (``identity``: name -> (tenant, tier)), and the
        residency floor in the catalogue: a copy of data that may not move freely (core and
        important under the legal floor; more if the policy tightens it) may only be registered
        on its owner's clusters or the national nodes. 422 naming the rule and each location."""
        unknown = [
            {"path": f"locations[{i}]", "message": f"unknown cluster {loc!r}"}
            for i, loc in enumerate(ds.locations)
            if loc not in identity
        ]
        if unknown:
            raise InvalidInput("a data set can only be located on registered clusters", errors=unknown)
        rule = self.residency().rule(ds.classification)
        if rule is Movement.anywhere:
            return
        errors = []
        for i, loc in enumerate(ds.locations):
            tenant, tier = identity[loc]
            if tenant != ds.owner and tier != Tier.national.value:
                errors.append(
                    {
                        "path": f"locations[{i}]",
                        "message": f"residency floor: {ds.classification.value} data of {ds.owner} may have "
                        f"copies only on its owner's clusters or the national nodes; {loc} belongs to "
                        f"{tenant}",
                    }
                )
        if errors:
            raise InvalidInput(
                f"residency floor: a copy of {ds.classification.value} data cannot be registered outside "
                "its owner's clusters and the national nodes",
                errors=errors,
            )
