"""Security model: roles, principals, hashed API tokens, data-set grants and the audit log.

A token is ``yw_<id>_<secret>``: the id (12 hex digits) is public and finds the row, the secret
(32 random bytes) is never stored; the row holds the SHA-256 of the whole token, compared in
constant time.

Tokens and approved grants are cached per process (``AuthCache``), so an authenticated,
grant-checked submission needs no database read in the common case: a token's row is read once
(the cache keeps its hash, principal and expiry, and every request still compares the hash and
checks the expiry), a tenant's approved grants once. Every change to them writes an audit row
in its own transaction; the process making the change drops what it cached at once, and every
process's store follower reads the new ``token.*`` and ``grant.*`` audit rows at each sync
(``follow_interval_s``, 0.5 s by default) and drops what they name. So a revocation takes
effect at once where it was made and within one sync everywhere else. The staleness is bounded
even when the follower stalls (the store away, a long scheduling cycle in the leader, which
syncs between cycles): a process whose follower runs trusts its cache only while its last
complete sync began at most ``max_lag_s`` ago (``cache_max_lag_s``: 2 s, or four sync
intervals if longer); past that every token and grant is read from the database until the
follower catches up. A token or grant not in the cache is read from the database; a
submission the cached grants would refuse is checked against the database before it is refused
(a new approval is never missed).

Open mode: in ``dev`` with neither YIWANG_ADMIN_TOKEN nor YIWANG_AGENT_TOKEN set, a request
without a valid token acts as the anonymous ``dev-open`` admin and bypasses every check,
grants included (the demo and most tests rely on it; /readyz reports ``auth: open``). Prod
refuses to start open (settings.py).

Why one module of this length: the roles, tokens, grants and audit rules are one policy checked
together on every request; their SQL is in ``store/security.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.datasets import NAME, DatasetRead
from controller.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from controller.jobs import JobCreate
from controller.schemas import Instant
from controller.settings import Settings
from controller.store.security import GRANT_APPROVED, GRANT_REJECTED, SecurityStore
from controller.store.store import Store, now, utc

TOKEN_RE = re.compile(r"^yw_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


class Role(StrEnum):
    admin = "admin"  # everything
    operator = "operator"  # cluster operations; reads everything; reads policies and the audit log
    tenant = "tenant"  # its own jobs and plans; data sets it owns or is granted; reads clusters
    agent = "agent"  # its own cluster's agent endpoints only


class GrantStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token id (or a bootstrap name), its role and what it is bound to."""

    id: str
    role: Role
    tenant: str | None = None
    cluster: str | None = None  # agent tokens; None on the shared dev agent token (any cluster)
    open: bool = False  # the anonymous principal of open dev mode: authorization is off

    def audit_row(self, action: str, target: str, **detail: Any) -> dict[str, Any]:
        return {
            "at": now(),
            "actor": self.id,
            "role": self.role.value,
            "tenant": self.tenant,
            "action": action,
            "target": target,
            "detail": detail,
        }


OPEN_DEV = Principal("dev-open", Role.admin, open=True)
BOOTSTRAP_ADMIN = Principal("bootstrap-admin", Role.admin)
SHARED_AGENT = Principal("bootstrap-agent", Role.agent)  # YIWANG_AGENT_TOKEN, dev only


def new_token() -> tuple[str, str]:
    """(id, token): the id is public; the token is shown once and only its hash is stored."""
    token_id = secrets.token_hex(6)
    return token_id, f"yw_{token_id}_{secrets.token_urlsafe(32)}"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme is case-insensitive
    (RFC 9110, section 11.1). None for no header, another scheme or an empty token."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return rest.strip() or None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def require(principal: Principal, *roles: Role) -> None:
    if principal.open or principal.role in roles:
        return
    allowed = ", ".join(r.value for r in roles)
    raise Forbidden(f"role {principal.role.value!r} may not do this (needs {allowed})")


def sees_tenant(principal: Principal, tenant: str) -> bool:
    """Whether the principal may read a tenant's jobs (admin, operator, the tenant itself)."""
    if principal.open or principal.role in (Role.admin, Role.operator):
        return True
    return principal.role == Role.tenant and principal.tenant == tenant


def acts_for_tenant(principal: Principal, tenant: str, path: str = "tenant") -> None:
    """Submitting or planning: admin for anyone, a tenant token for itself only (403)."""
    if principal.open or principal.role == Role.admin:
        return
    if principal.role == Role.tenant and principal.tenant != tenant:
        raise Forbidden(
            f"a token of tenant {principal.tenant!r} acts for {principal.tenant!r} only",
            errors=[{"path": path, "message": f"expected {principal.tenant!r}, got {tenant!r}"}],
        )


# ---- API schemas ---------------------------------------------------------------------------
class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    tenant: Annotated[str | None, Field(pattern=NAME)] = None
    cluster: Annotated[str | None, Field(pattern=NAME)] = None
    description: Annotated[str, Field(max_length=200)] = ""
    expires_at: Instant | None = None

    @model_validator(mode="after")
    def _bound(self) -> TokenCreate:
        if (self.role == Role.tenant) != (self.tenant is not None):
            raise ValueError("'tenant' is required for role tenant and only for it")
        if (self.role == Role.agent) != (self.cluster is not None):
            raise ValueError("'cluster' is required for role agent and only for it")
        return self


class TokenRead(BaseModel):
    id: str
    role: Role
    tenant: str | None
    cluster: str | None
    description: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenIssued(TokenRead):
    token: str = Field(description="the bearer token; shown only in this answer")


class TokenList(BaseModel):
    items: list[TokenRead]


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: Annotated[str | None, Field(pattern=NAME, description="the reading tenant (admin only)")] = None
    reason: Annotated[str, Field(max_length=1000)] = ""


class GrantRead(BaseModel):
    id: str
    dataset_id: str
    tenant: str
    status: GrantStatus
    reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class GrantDecision(GrantRead):
    """A grant as decided, with the jobs the decision stopped (a withdrawal: an approved grant
    rejected)."""

    stopped_jobs: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "job id -> the phase it was left in: the grantee's unfinished jobs reading the data set "
            "(Failed when they had not started, Cancelled when running; the agent stops them)"
        ),
    )


class GrantList(BaseModel):
    items: list[GrantRead]


class GrantOverview(GrantRead):
    """A grant with its data set's owner and classification, and whether the caller decides it."""

    dataset_owner: str
    classification: str
    can_decide: bool = Field(description="the caller may approve or reject it (the owner or an admin)")


class GrantOverviewList(BaseModel):
    items: list[GrantOverview] = Field(description="newest request first")


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    tenant: str | None
    action: str
    target: str
    detail: dict[str, Any]
    prev_hash: str | None = None  # the SM3 chain (controller/store/audit_chain.py)
    hash: str | None = None


class AuditList(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None = None


def _token_read(row: Any) -> TokenRead:
    d = dict(row)
    for k in ("created_at", "expires_at", "revoked_at"):
        d[k] = utc(d[k])
    return TokenRead.model_validate({k: d[k] for k in TokenRead.model_fields})


def _grant_read(row: Any) -> GrantRead:
    d = dict(row)
    d["requested_at"], d["decided_at"] = utc(d["requested_at"]), utc(d["decided_at"])
    return GrantRead.model_validate(d)


SECURITY_ACTIONS = ("token.revoked", "grant.requested", GRANT_APPROVED, GRANT_REJECTED)
AUTH_CACHE_MAX = 100_000  # tokens, and tenants' grant sets


class AuthCache:
    """Token rows and tenants' approved grants as last read (see the module docstring)."""

    def __init__(self, maxsize: int = AUTH_CACHE_MAX) -> None:
        self.maxsize = maxsize
        self.tokens: dict[str, tuple[str, Principal, datetime | None]] = {}  # id -> hash, who, expiry
        self.grants: dict[str, frozenset[str]] = {}  # tenant -> approved data set ids
        self.hits = 0
        self.misses = 0
        # Bumped by every drop. A row read from the database is cached only if no drop happened
        # since the read began (``generation`` taken before it): otherwise a revocation applied
        # between the read and the put would be undone by the put, for good.
        self.generation = 0

    def put_token(
        self, token_id: str, secret_hash: str, who: Principal, expires: datetime | None, generation: int
    ) -> None:
        if generation != self.generation:
            return
        if len(self.tokens) >= self.maxsize:
            self.tokens.clear()
        self.tokens[token_id] = (secret_hash, who, expires)

    def put_grants(self, tenant: str, ids: frozenset[str], generation: int) -> None:
        if generation != self.generation:
            return
        if len(self.grants) >= self.maxsize:
            self.grants.clear()
        self.grants[tenant] = ids

    def drop_token(self, token_id: str) -> None:
        self.generation += 1
        self.tokens.pop(token_id, None)

    def drop_grants(self, tenant: str) -> None:
        self.generation += 1
        self.grants.pop(tenant, None)

    def invalidate(self, changes: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Drop what the audit rows (action, target, detail) of token and grant changes name."""
        self.generation += 1
        for action, target, detail in changes:
            if action.startswith("token."):
                self.tokens.pop(target.removeprefix("token/"), None)
            elif action.startswith("grant."):
                grantee = detail.get("grantee") if isinstance(detail, dict) else None
                if isinstance(grantee, str):
                    self.grants.pop(grantee, None)
                else:
                    self.grants.clear()


def cache_max_lag_s(settings: Settings) -> float:
    """How long after its follower's last complete sync began a process still trusts its token
    and grant cache (the bound on how stale an answer from the cache can be)."""
    return max(2.0, 4 * max(settings.follow_interval_s, settings.loop_interval_s))


class Security:
    """Authentication, grants and the audit log, over the controller's store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.repo = SecurityStore(store)  # the SQL (controller/store/security.py)
        self.settings = settings
        self.cache = AuthCache()
        # When the follower last began a complete sync (wall clock), once a follower keeps this
        # process's cache in step (``follow``); None: the cache is always trusted (a process
        # alone on its database, or tests that sync by hand).
        self.synced_at: Callable[[], float] | None = None
        self.max_lag_s = cache_max_lag_s(settings)

    def follow(self, synced_at: Callable[[], float]) -> None:
        """Trust the cache only while ``synced_at()`` is at most ``max_lag_s`` old."""
        self.synced_at = synced_at

    def cache_trusted(self) -> bool:
        return self.synced_at is None or time.time() - self.synced_at() <= self.max_lag_s

    @property
    def open(self) -> bool:
        return self.settings.open_auth

    # ---- authentication -----------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        principal = self._lookup(token) if token else None
        if principal is not None:
            return principal
        if self.open:
            return OPEN_DEV
        if token is None:
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        raise Unauthorized("the bearer token is not valid (unknown, revoked or expired)")

    def authenticate_without_store(self, authorization: str | None) -> Principal | None:
        """The answer when it needs no database read (no token in open mode, or a bootstrap
        token); None when the token must be looked up. Keeps the API's hot path off threads."""
        token = bearer_token(authorization)
        if token is None:
            if self.open:
                return OPEN_DEV
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        s = self.settings
        if s.admin_token and hmac.compare_digest(token.encode(), s.admin_token.encode()):
            return BOOTSTRAP_ADMIN
        return self._cached(token)

    def _cached(self, token: str) -> Principal | None:
        """The token's principal from the cache (hash compared, expiry checked), or None."""
        m = TOKEN_RE.match(token)
        if m is None:
            return None
        entry = self.cache.tokens.get(m.group(1)) if self.cache_trusted() else None
        if entry is None:
            self.cache.misses += 1
            return None
        secret_hash, who, expires = entry
        if not hmac.compare_digest(hash_token(token), secret_hash):
            return None
        if expires is not None and expires <= now():
            self.cache.tokens.pop(m.group(1), None)
            return None
        self.cache.hits += 1
        return who

    def _lookup(self, token: str) -> Principal | None:
        s = self.settings
        if s.admin_token and hmac.compare_digest(token.encode(), s.admin_token.encode()):
            return BOOTSTRAP_ADMIN
        if (
            s.environment == "dev"
            and s.agent_token
            and hmac.compare_digest(token.encode(), s.agent_token.encode())
        ):
            return SHARED_AGENT
        m = TOKEN_RE.match(token)
        if m is None:
            return None
        generation = self.cache.generation
        row = self.repo.token(m.group(1))
        if row is None or not hmac.compare_digest(hash_token(token), row["secret_hash"]):
            return None
        expires = utc(row["expires_at"])
        if row["revoked_at"] is not None or (expires is not None and expires <= now()):
            return None
        who = Principal(row["id"], Role(row["role"]), tenant=row["tenant"], cluster=row["cluster"])
        self.cache.put_token(row["id"], row["secret_hash"], who, expires, generation)
        return who

    # ---- tokens -------------------------------------------------------------------------------
    def issue(self, by: Principal, req: TokenCreate) -> TokenIssued:
        token_id, token = new_token()
        row = {
            "id": token_id,
            "secret_hash": hash_token(token),
            "role": req.role.value,
            "tenant": req.tenant,
            "cluster": req.cluster,
            "description": req.description,
            "created_at": now(),
            "created_by": by.id,
            "expires_at": req.expires_at,
            "revoked_at": None,
        }
        detail = {"role": req.role.value, "tenant": req.tenant, "cluster": req.cluster}
        self.repo.insert_token(row, by.audit_row("token.issued", f"token/{token_id}", **detail))
        return TokenIssued(**_token_read(row).model_dump(), token=token)

    def list_tokens(self) -> list[TokenRead]:
        return [_token_read(r) for r in self.repo.tokens()]

    def revoke(self, by: Principal, token_id: str) -> None:
        done = self.repo.revoke_token(token_id, now(), by.audit_row("token.revoked", f"token/{token_id}"))
        if done is None:
            raise NotFound(f"token {token_id!r} not found")
        self.cache.drop_token(token_id)

    # ---- data-set grants ----------------------------------------------------------------------
    def granted(self, tenant: str, dataset_ids: Iterable[str]) -> set[str]:
        """The data sets among ``dataset_ids`` the tenant holds an approved grant for: from the
        cache when it has them all, else from the database (which refreshes the cache)."""
        ids = set(dataset_ids)
        if not ids:
            return set()
        cached = self.cache.grants.get(tenant) if self.cache_trusted() else None
        if cached is not None and ids <= cached:
            self.cache.hits += 1
            return ids
        self.cache.misses += 1
        generation = self.cache.generation
        approved = self.repo.approved_datasets(tenant)
        self.cache.put_grants(tenant, approved, generation)
        return ids & approved

    def granted_cached(self, tenant: str, dataset_ids: Iterable[str]) -> bool:
        """Whether the cache shows an approved grant for every one of ``dataset_ids`` (False
        when it does not know: the caller then asks ``check_grants``)."""
        cached = self.cache.grants.get(tenant) if self.cache_trusted() else None
        return cached is not None and all(d in cached for d in dataset_ids)

    def check_grants(self, principal: Principal, spec: JobCreate, datasets: dict[str, DatasetRead]) -> None:
        """403 naming each input the job's tenant neither owns nor holds an approved grant for.
        Unknown data sets are left to the catalogue check (422). Residency is not affected."""
        if principal.open:
            return
        foreign = {d for d in spec.inputs if d in datasets and datasets[d].owner != spec.tenant}
        if not foreign:
            return
        ok = self.granted(spec.tenant, foreign)
        errors = [
            {
                "path": f"inputs[{i}]",
                "message": f"tenant {spec.tenant!r} has no approved grant for data set {d!r} "
                f"(owner {datasets[d].owner!r}); request one: POST /v1/datasets/{d}/grants",
            }
            for i, d in enumerate(spec.inputs)
            if d in foreign and d not in ok
        ]
        if errors:
            raise Forbidden("the job reads data sets its tenant is not granted", errors=errors)

    def can_read_dataset(self, principal: Principal, ds: DatasetRead) -> bool:
        if principal.open or principal.role in (Role.admin, Role.operator):
            return True
        if principal.role != Role.tenant or principal.tenant is None:
            return False
        return ds.owner == principal.tenant or bool(self.granted(principal.tenant, [ds.id]))

    def visible_datasets(self, principal: Principal, datasets: Iterable[DatasetRead]) -> list[DatasetRead]:
        items = list(datasets)
        if principal.open or principal.role in (Role.admin, Role.operator):
            return items
        tenant = principal.tenant or ""
        ok = self.granted(tenant, [d.id for d in items if d.owner != tenant])
        return [d for d in items if d.owner == tenant or d.id in ok]

    def request_grant(self, by: Principal, ds: DatasetRead, req: GrantCreate) -> tuple[GrantRead, bool]:
        """A reading tenant asks the owner for a data set (an admin may ask for any tenant).
        Pending or approved: the existing grant (created=False); rejected: asked again."""
        if by.open or by.role == Role.admin:
            if req.tenant is None:
                raise InvalidInput(
                    "name the reading tenant", errors=[{"path": "tenant", "message": "required for admin"}]
                )
            tenant = req.tenant
        else:
            tenant = by.tenant or ""
            acts_for_tenant(by, req.tenant or tenant)
        if tenant == ds.owner:
            raise InvalidInput(
                f"{tenant!r} owns data set {ds.id!r} and needs no grant",
                errors=[{"path": "tenant", "message": "the owner needs no grant"}],
            )
        fresh = {
            "status": GrantStatus.pending.value,
            "reason": req.reason,
            "requested_by": by.id,
            "requested_at": now(),
            "decided_by": None,
            "decided_at": None,
        }
        audit = by.audit_row("grant.requested", f"dataset/{ds.id}", grantee=tenant, reason=req.reason[:200])
        row, created = self.repo.request_grant(ds.id, tenant, fresh, audit)
        return _grant_read(row), created

    def list_grants(self, principal: Principal, ds: DatasetRead) -> list[GrantRead]:
        sees_all = (
            principal.open or principal.role in (Role.admin, Role.operator) or principal.tenant == ds.owner
        )
        rows = self.repo.grants_of(ds.id, None if sees_all else (principal.tenant or ""))
        return [_grant_read(r) for r in rows]

    def grants_overview(
        self, principal: Principal, status: GrantStatus | None = None, limit: int = 1000
    ) -> list[GrantOverview]:
        """The grants the caller may see across the catalogue: all for admin and operator; for a
        tenant, those it asked for and those on data sets it owns (which it decides)."""
        sees_all = principal.open or principal.role in (Role.admin, Role.operator)
        rows = self.repo.grants_overview(
            status.value if status is not None else None,
            limit,
            None if sees_all else (principal.tenant or ""),
        )
        out = []
        for r in rows:
            grant = _grant_read({k: r[k] for k in GrantRead.model_fields})
            decides = (
                principal.open
                or principal.role == Role.admin
                or (principal.role == Role.tenant and principal.tenant == r["dataset_owner"])
            )
            out.append(
                GrantOverview(
                    **grant.model_dump(),
                    dataset_owner=r["dataset_owner"],
                    classification=r["classification"],
                    can_decide=decides,
                )
            )
        return out

    def decide_grant(self, by: Principal, ds: DatasetRead, grant_id: str, approve: bool) -> GrantDecision:
        """The owner (or an admin) approves or rejects. Rejecting an approved grant withdraws
        it: new submissions and plans are refused, and in the same transaction the grantee's
        unfinished jobs reading the data set stop (``SecurityStore.decide_grant``: not started,
        they fail; running, they are cancelled and their agents stop them). The caller drops
        the stopped jobs from its in-memory views (``Controller.forget_stopped``). The
        scheduling cycle also reads the grants again before it places a job
        (``SchedulingService.ungranted``): a grant withdrawn by hand in the database, or by
        another process between a cycle's read and its placement, is caught there."""
        if not (by.open or by.role == Role.admin or (by.role == Role.tenant and by.tenant == ds.owner)):
            raise Forbidden(f"only the owner of data set {ds.id!r} ({ds.owner}) or an admin decides grants")
        status = GrantStatus.approved if approve else GrantStatus.rejected
        action = GRANT_APPROVED if approve else GRANT_REJECTED
        row = self.repo.decide_grant(
            ds.id,
            grant_id,
            status.value,
            by.id,
            now(),
            lambda grantee: by.audit_row(action, f"dataset/{ds.id}", grantee=grantee, grant=grant_id),
        )
        if row is None:
            raise NotFound(f"grant {grant_id!r} of data set {ds.id!r} not found")
        self.cache.drop_grants(row["tenant"])
        stopped = row.pop("stopped")
        return GrantDecision(**_grant_read(row).model_dump(), stopped_jobs=stopped)

    # ---- audit log ----------------------------------------------------------------------------
    def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        after: int | None = None,
        target: str | None = None,
        newest_first: bool = False,
        exclude_action: str | None = None,
    ) -> list[AuditRead]:
        """Oldest first (``after``: ids above it), or newest first (``after``: ids below it)."""
        rows = self.repo.audit_rows(
            actor=actor,
            action=action,
            since=since,
            limit=limit,
            after=after,
            target=target,
            newest_first=newest_first,
            exclude_action=exclude_action,
        )
        return [AuditRead.model_validate({**r, "at": utc(r["at"])}) for r in rows]
