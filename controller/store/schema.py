"""Tables. Alembic migrations in controller/store/migrations create exactly this schema (a test
compares them)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),  # time-ordered, so it doubles as the list cursor
    Column("tenant", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("cluster", String(63), nullable=True),
    Column("attempt", Integer, nullable=False, default=1),
    Column("epoch", BigInteger, nullable=False, default=0),
    Column("priority", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_hash", String(64), nullable=True),
    UniqueConstraint("tenant", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
)
Index("ix_jobs_phase", jobs.c.phase)
Index("ix_jobs_cluster_phase", jobs.c.cluster, jobs.c.phase)
Index("ix_jobs_tenant", jobs.c.tenant)
# The pending head in the order the scheduler reads it (migration 0006)
Index("ix_jobs_pending_order", jobs.c.phase, jobs.c.priority.desc(), jobs.c.id)
# Each cluster's attempts (its agent's listing, every poll) in id order, only the Scheduled and
# Running rows, covering what the listing reads (migration 0007). A query uses it when it names
# the phases as these literals (``ACTIVE_LITERAL``): the planners of both databases match a
# partial index's condition only against constants, not against bound parameters.
ACTIVE_LITERAL = jobs.c.phase.in_([literal_column("'Scheduled'"), literal_column("'Running'")])
Index(
    "ix_jobs_active_on_cluster",
    jobs.c.cluster,
    jobs.c.id,
    jobs.c.tenant,
    jobs.c.phase,
    jobs.c.attempt,
    jobs.c.epoch,
    sqlite_where=ACTIVE_LITERAL,
    postgresql_where=ACTIVE_LITERAL,
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("type", String(32), nullable=False),
    Column("from_phase", String(16), nullable=True),
    Column("to_phase", String(16), nullable=True),
    Column("cluster", String(63), nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("reason", Text, nullable=False),
)
Index("ix_job_events_job_id", job_events.c.job_id)
Index("ix_job_events_type_at", job_events.c.type, job_events.c.at)  # migration 0004

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("cluster", String(63), nullable=True),
    Column("status", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("body", JSON, nullable=False),
)
Index("ix_decisions_job_id", decisions.c.job_id)

# What stored decisions share or hold in bulk (migration 0006; controller/scheduler/stored.py):
# a cycle's context (body) and a cycle's packed columns (data), by key; a decision in the columns
# format names its context and its slice of the data.
decision_parts = Table(
    "decision_parts",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("body", JSON, nullable=True),
    Column("data", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

clusters = Table(
    "clusters",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("cordoned", Boolean, nullable=False, default=False),
    Column("draining", Boolean, nullable=False, default=False),
    Column("health", String(16), nullable=False, default="Unknown"),
    Column("last_heartbeat", DateTime(timezone=True), nullable=True),
    Column("reported", JSON, nullable=True),  # capacity and usage from the agent's last heartbeat
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("owner", String(63), nullable=False),
    Column("classification", String(16), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("locations", JSON, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

leader = Table(
    "leader",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# ---- security (migration 0002): tokens, data-set grants, the append-only audit log ------------
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),  # the public prefix of the token, for lookup
    Column("secret_hash", String(64), nullable=False),  # SHA-256 hex of the whole token
    Column("role", String(16), nullable=False),
    Column("tenant", String(63), nullable=True),
    Column("cluster", String(63), nullable=True),
    Column("description", String(200), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

dataset_grants = Table(
    "dataset_grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(128), ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("tenant", String(63), nullable=False),  # the reading tenant
    Column("status", String(16), nullable=False),  # pending | approved | rejected
    Column("reason", Text, nullable=False, default=""),
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("dataset_id", "tenant", name="uq_dataset_grants_dataset_tenant"),
)
Index("ix_dataset_grants_tenant", dataset_grants.c.tenant)

# Append-only: the migration adds triggers refusing UPDATE and DELETE (and TRUNCATE on PostgreSQL).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),  # token id, or 'scheduler' for placements
    Column("role", String(16), nullable=False),
    Column("tenant", String(63), nullable=True),
    Column("action", String(48), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", JSON, nullable=False),
    # SM3 chain (migration 0003; controller/store/audit_chain.py): NULL on rows written before it
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
)
Index("ix_audit_log_at", audit_log.c.at)
Index("ix_audit_log_actor", audit_log.c.actor)
Index("ix_audit_log_action", audit_log.c.action)
Index("ix_audit_log_target", audit_log.c.target)  # migration 0004

# SM2-signed checkpoints of the audit chain (migration 0003; controller/audit.py)
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("public_key", String(130), nullable=False),
    Column("signature", String(256), nullable=False),
)
