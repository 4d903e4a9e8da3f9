"""Durable store: SQLAlchemy 2 Core over SQLite (WAL, embedded default) or PostgreSQL."""

from controller.store.store import Store

__all__ = ["Store"]
