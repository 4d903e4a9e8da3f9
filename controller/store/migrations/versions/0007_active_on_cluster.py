"""Each cluster's Scheduled and Running attempts in id order (an agent's listing).

- ``ix_jobs_active_on_cluster``: a partial index over the jobs in those two phases, keyed by
  (cluster, id) and covering the listing's columns (tenant, phase, attempt, epoch). Every agent
  lists its cluster's attempts at each poll, 500 a page in id order. Through
  ``ix_jobs_cluster_phase`` each page read every active row of the cluster, looked each up in
  the table and sorted them all to keep 500: a cluster with 10,000 running attempts read
  200,000 rows per poll. Through this index a page reads its own 500 entries and nothing else,
  and the index holds only active jobs, however many the federation ran before.

Building it reads the whole jobs table once. On PostgreSQL it is built ``CONCURRENTLY``
(``create_index_online``): submissions and cycles go on writing the table meanwhile. The index
itself is small (active jobs only).

Revision ID: 0007
Revises: 0006
Create Date: 2027-02-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.store.migrate import create_index_online

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACTIVE = sa.text("phase IN ('Scheduled', 'Running')")


def upgrade() -> None:
    create_index_online(
        "ix_jobs_active_on_cluster",
        "jobs",
        ["cluster", "id", "tenant", "phase", "attempt", "epoch"],
        where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_active_on_cluster", table_name="jobs")
