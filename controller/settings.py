"""Settings, from the environment (YIWANG_*) or arguments; unsafe defaults refused outside dev."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="YIWANG_", extra="ignore")

    environment: Literal["dev", "prod"] = "dev"
    # Storage
    database_url: str = "sqlite:///.yiwang/yiwang.db"
    policies_dir: Path = REPO_POLICIES
    # API
    # Bootstrap tokens; issue per-tenant/-agent/-operator tokens with POST /v1/tokens
    # (docs/security.md). Dev with neither set is open; prod refuses that.
    admin_token: str | None = Field(default=None, description="bootstrap admin bearer token")
    agent_token: str | None = Field(
        default=None, description="shared agent token, accepted for any cluster; dev only"
    )
    max_body_bytes: int = 1 << 20
    # Control loops
    mode: Literal["active", "standby"] = "active"  # standby: does not take the lead at start-up
    # all: serve the API and compete for the scheduling leadership (the leader schedules);
    # api: serve the API only, never lead; follow the store (an API replica in front of the
    # scheduling leader: docs/design-notes.md, "Several controller processes").
    role: Literal["all", "api"] = "all"
    follow_interval_s: float = Field(default=0.5, gt=0, description="role=api: how often views sync")
    holder: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    leader_ttl_s: float = 10.0
    background: bool = True  # run the scheduling and lease loops in a background thread
    # The process's garbage collector tuned for the leader's cycles (collector.py: collections
    # held off during a cycle, what survives frozen, a full collection every 600 s). For a process
    # that is the controller; off where the controller is a guest in another program's process
    # (the test suite, a drill run in threads), whose own garbage would be frozen with it and then
    # collected at once, holding every thread of that process for seconds.
    tune_gc: bool = True
    loop_interval_s: float = 0.2
    min_cycle_gap_s: float = 0.2  # bound on scheduling cycles per second under a submission stream
    schedule_batch: int = 2000
    # Capacity from Prometheus (kube-state-metrics-style series scraped from the agents); the
    # agents' heartbeats are the fallback when it is unset, down or stale.
    prometheus_url: str | None = Field(default=None, description="e.g. http://prometheus:9090")
    prometheus_timeout_s: float = Field(default=2.0, gt=0)
    capacity_refresh_s: float = Field(default=5.0, gt=0, description="how often Prometheus is queried")
    capacity_max_age_s: float = Field(default=30.0, gt=0, description="older observations are stale")
    # The dashboard's time series (GET /v1/metrics/series): the controller samples its own
    # metrics into a ring buffer every metrics_sample_s, keeping metrics_history samples (720 x 5 s
    # = the last hour); with series_prometheus_url set, the series come from that Prometheus (the
    # one scraping this controller's /metrics) and the ring buffer is the fallback.
    metrics_sample_s: float = Field(default=5.0, gt=0, le=3600)
    metrics_history: int = Field(default=720, ge=10, le=100_000)
    series_prometheus_url: str | None = Field(default=None, description="e.g. http://prometheus:9090")
    # The folder `yiwang drill run --out` writes its JSON reports to; GET /v1/drills reads them.
    drill_reports_dir: Path | None = None
    # Tamper-evident audit (controller/audit.py): the leader signs a checkpoint of the SM3 chain
    # with this SM2 private key (64 hex digits; `yiwang audit keygen`) every audit_checkpoint_s,
    # and appends it to audit_checkpoint_file when set (keep that outside the database's reach).
    audit_sm2_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    audit_checkpoint_s: float = Field(default=300.0, gt=0)
    audit_checkpoint_file: Path | None = None
    # Refused requests (401/403) are counted per (caller or token-hash prefix, method + route,
    # status) and written as one audit row per key every audit_denied_interval_s and at shutdown;
    # beyond audit_denied_max_keys keys in one interval, new callers are counted as "(others)".
    audit_denied_interval_s: float = Field(default=60.0, gt=0)
    # Retention (controller/store/retention.py): the leader deletes finished jobs, with their
    # events and stored decisions, whose row last changed more than retention_days ago, and the
    # decision parts no remaining decision names, every retention_check_s; 0 keeps everything.
    # The audit log is never pruned.
    retention_days: float = Field(default=90.0, ge=0, le=36_500)
    retention_check_s: float = Field(default=3600.0, gt=0)
    audit_denied_max_keys: int = Field(default=1000, ge=1, le=1_000_000)

    @property
    def open_auth(self) -> bool:
        """Dev without tokens: every caller is the open dev principal (no grants checked)."""
        return self.environment == "dev" and not self.admin_token and not self.agent_token

    @model_validator(mode="after")
    def _safe_outside_dev(self) -> Settings:
        if self.environment == "prod":
            if not self.admin_token:
                raise ValueError("prod needs YIWANG_ADMIN_TOKEN (prod never runs with open auth)")
            if self.agent_token:
                raise ValueError(
                    "YIWANG_AGENT_TOKEN (one token for every cluster) is for dev only; in prod issue "
                    "a token per cluster: yiwang token create --role agent --cluster <name>"
                )
            if self.database_url.startswith("sqlite"):
                raise ValueError("prod needs PostgreSQL (YIWANG_DATABASE_URL=postgresql+psycopg://...)")
        return self
