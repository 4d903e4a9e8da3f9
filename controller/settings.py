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
    admin_token: str | None = Field(default=None, description="operator/admin bearer token")
    agent_token: str | None = Field(default=None, description="bearer token agents present")
    max_body_bytes: int = 1 << 20
    # Control loops
    mode: Literal["active", "standby"] = "active"
    holder: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    leader_ttl_s: float = 15.0
    background: bool = True  # run the scheduling and lease loops in a background thread
    loop_interval_s: float = 0.2
    schedule_batch: int = 2000
    # Capacity from Prometheus (kube-state-metrics-style series scraped from the agents); the
    # agents' heartbeats are the fallback when it is unset, down or stale.
    prometheus_url: str | None = Field(default=None, description="e.g. http://prometheus:9090")
    prometheus_timeout_s: float = Field(default=2.0, gt=0)
    capacity_refresh_s: float = Field(default=5.0, gt=0, description="how often Prometheus is queried")
    capacity_max_age_s: float = Field(default=30.0, gt=0, description="older observations are stale")

    @model_validator(mode="after")
    def _safe_outside_dev(self) -> Settings:
        if self.environment == "prod":
            if not self.admin_token or not self.agent_token:
                raise ValueError("prod needs YIWANG_ADMIN_TOKEN and YIWANG_AGENT_TOKEN")
            if self.database_url.startswith("sqlite"):
                raise ValueError("prod needs PostgreSQL (YIWANG_DATABASE_URL=postgresql+psycopg://...)")
        return self
