"""Tenant quotas, dominant-resource fair share and priority classes (Kueue-style, federation-wide).

Every tenant is a ClusterQueue of one cohort, the federation. A job is admitted while its tenant's
usage stays within ``nominal`` (guaranteed), or within ``nominal + borrowing_limit`` when the
cohort still has unused nominal quota to lend (Kueue ``nominalQuota``/``borrowingLimit``).
When contended, tenants are served in order of their dominant share (DRF, Ghodsi et al. 2011):
the largest share of any resource a tenant uses, relative to its nominal quota (or to the
federation's capacity when it has none), divided by its weight.

Vectors here have three entries (cpu, memory GiB, gpu), so the book keeps plain floats: on the
batch loop's hot path that is several times cheaper than numpy on tiny arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from controller.jobs import JobCreate
from controller.policies import QUOTA_RESOURCES, QuotaPolicy, TenantQuota
from controller.scheduler.framework import FloatArray

REASON_OVER_LIMIT = "tenant {tenant} would exceed its quota of {res} ({used:g} used + {need:g} > {limit:g} nominal+borrowable)"
REASON_NO_LENDER = (
    "tenant {tenant} would borrow {res} but the cohort has no unused quota ({free:g} left, {need:g} needed)"
)
REASON_UNKNOWN_CLASS = "priority class {name!r} is not defined in the quota policy"
INF = math.inf
EPS = 1e-9


def effective_priority(spec: JobCreate, policy: QuotaPolicy | None) -> int | None:
    """The priority the scheduler uses: the class's value when a class is named (None if unknown)."""
    return class_priority(spec.priority, spec.priority_class, policy)


def class_priority(priority: int, priority_class: str | None, policy: QuotaPolicy | None) -> int | None:
    """``effective_priority`` from the two fields (a stored spec need not be validated first)."""
    if priority_class is None:
        return priority
    if policy is None:
        return None
    return policy.priority_classes.get(priority_class)


def _vector(values: dict[str, float] | None, missing: float) -> list[float]:
    if values is None:
        return [missing] * 3
    return [float(values.get(r, missing)) for r in QUOTA_RESOURCES]


class TenantLimits:
    __slots__ = ("ceiling", "denom", "limited", "nominal", "weight")

    def __init__(self, q: TenantQuota | None, capacity: Sequence[float]) -> None:
        if q is None or not (q.nominal or q.borrowing_limit is not None):
            self.nominal = [INF] * 3
            self.ceiling = [INF] * 3
            self.weight = q.weight if q is not None else 1.0
        else:
            self.nominal = _vector(q.nominal, INF) if q.nominal else [INF] * 3
            borrow = _vector(q.borrowing_limit, INF)
            self.ceiling = [a + b for a, b in zip(self.nominal, borrow, strict=True)]
            self.weight = q.weight
        self.limited = any(math.isfinite(x) for x in self.ceiling) or any(
            math.isfinite(x) for x in self.nominal
        )
        self.denom = [
            n if math.isfinite(n) and n > 0 else max(c, EPS)
            for n, c in zip(self.nominal, capacity, strict=True)
        ]


class QuotaBook:
    """Live usage per tenant and the admission rule; ``admit`` reserves, ``release`` gives back."""

    def __init__(
        self,
        policy: QuotaPolicy | None,
        federation_capacity: FloatArray | Sequence[float],
        tenants: Sequence[str],
        usage: dict[str, FloatArray] | None = None,
    ) -> None:
        self.policy = policy
        self.capacity = [float(x) for x in federation_capacity]
        self.usage: dict[str, list[float]] = {k: [float(x) for x in v] for k, v in (usage or {}).items()}
        self.shares: dict[str, float] = {}
        self._borrowing: dict[str, bool] = {}  # ``borrowing``, until the tenant's usage changes
        self.changes = 0  # counts ``admit`` and ``release``: what ``borrowing`` answers may change
        self._limits: dict[str, TenantLimits] = {}
        known = set(tenants) | set(self.usage) | (set(policy.tenants) if policy else set())
        self.cohort_nominal = [0.0, 0.0, 0.0]
        for t in sorted(known):
            nominal = self.limits(t).nominal
            for r in range(3):
                if math.isfinite(nominal[r]):
                    self.cohort_nominal[r] += nominal[r]
        self.cohort_usage = [0.0, 0.0, 0.0]
        for u in self.usage.values():
            for r in range(3):
                self.cohort_usage[r] += u[r]

    def entry(self, tenant: str) -> TenantQuota | None:
        if self.policy is None:
            return None
        return self.policy.tenants.get(tenant, self.policy.default)

    def limits(self, tenant: str) -> TenantLimits:
        lim = self._limits.get(tenant)
        if lim is None:
            lim = self._limits[tenant] = TenantLimits(self.entry(tenant), self.capacity)
        return lim

    def used(self, tenant: str) -> list[float]:
        u = self.usage.get(tenant)
        if u is None:
            u = self.usage[tenant] = [0.0, 0.0, 0.0]
        return u

    def check(self, tenant: str, demand: Sequence[float]) -> tuple[str | None, bool]:
        """(reason it may not run now or None, whether waiting can never help)."""
        lim = self.limits(tenant)
        if not lim.limited:
            return None, False
        used = self.used(tenant)
        borrowing = False
        for r in range(3):
            new = used[r] + demand[r]
            if new > lim.ceiling[r] + EPS:
                reason = REASON_OVER_LIMIT.format(
                    tenant=tenant, res=QUOTA_RESOURCES[r], used=used[r], need=demand[r], limit=lim.ceiling[r]
                )
                return reason, demand[r] > lim.ceiling[r]
            if new > lim.nominal[r] + EPS and demand[r] > 0:
                borrowing = True
        if borrowing:
            for r in range(3):
                if used[r] + demand[r] <= lim.nominal[r] + EPS or demand[r] <= 0:
                    continue
                lendable = self.cohort_nominal[r] - self.cohort_usage[r]
                if lendable + EPS < demand[r]:
                    reason = REASON_NO_LENDER.format(
                        tenant=tenant, res=QUOTA_RESOURCES[r], free=max(lendable, 0.0), need=demand[r]
                    )
                    return reason, False
        return None, False

    def admit(self, tenant: str, demand: Sequence[float]) -> None:
        u = self.used(tenant)
        cu = self.cohort_usage
        for r in range(3):
            u[r] += demand[r]
            cu[r] += demand[r]
        self.shares.pop(tenant, None)
        self._borrowing.pop(tenant, None)
        self.changes += 1

    def release(self, tenant: str, demand: Sequence[float]) -> None:
        u = self.used(tenant)
        cu = self.cohort_usage
        for r in range(3):
            u[r] = max(u[r] - demand[r], 0.0)
            cu[r] = max(cu[r] - demand[r], 0.0)
        self.shares.pop(tenant, None)
        self._borrowing.pop(tenant, None)
        self.changes += 1

    def within_nominal(self, tenant: str, extra: Sequence[float] | None = None) -> bool:
        nominal, used = self.limits(tenant).nominal, self.used(tenant)
        add = extra if extra is not None else (0.0, 0.0, 0.0)
        return all(used[r] + add[r] <= nominal[r] + EPS for r in range(3))

    def borrowing(self, tenant: str) -> bool:
        """Whether the tenant uses more than its nominal quota (kept until it admits or releases:
        preemption asks it of every tenant on a cluster, for each job it tries to make room for)."""
        b = self._borrowing.get(tenant)
        if b is None:
            b = self._borrowing[tenant] = not self.within_nominal(tenant)
        return b

    def dominant_share(self, tenant: str) -> float:
        """DRF: max over resources of usage / (nominal, or federation capacity), over weight."""
        s = self.shares.get(tenant)
        if s is None:
            lim = self.limits(tenant)
            u = self.used(tenant)
            s = max(u[0] / lim.denom[0], u[1] / lim.denom[1], u[2] / lim.denom[2]) / lim.weight
            self.shares[tenant] = s
        return s


def usage_vector(book: QuotaBook, tenant: str) -> FloatArray:
    return np.array(book.used(tenant), dtype=np.float64)
