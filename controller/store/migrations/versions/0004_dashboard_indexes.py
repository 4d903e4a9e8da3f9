"""Indexes for the dashboard's reads: job events by type and time (recent failovers, drains and
preemptions: GET /v1/federation/map, /v1/tenants) and the audit log by target (a cluster's or a
data set's history: GET /v1/audit?target=...), so neither scans its whole table.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-10
"""

from __future__ import annotations

from alembic import op

from controller.store.migrate import create_index_online

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # built CONCURRENTLY on PostgreSQL: the tables are live (create_index_online)
    create_index_online("ix_job_events_type_at", "job_events", ["type", "at"])
    create_index_online("ix_audit_log_target", "audit_log", ["target"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index("ix_job_events_type_at", table_name="job_events")
