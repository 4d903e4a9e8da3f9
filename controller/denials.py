"""Failed authentication (401) and authorisation (403), audited so a flood cannot fill the disk.

Each refused request is counted in memory under (subject, method, route template, status): the
subject is the caller's token id for a 403 (it authenticated), and for a 401 the first 12 hex
digits of the SHA-256 of the token presented (``sha256:<prefix>``; the token itself is never
kept) or ``anonymous`` without one. The template is the matched route's (``/v1/jobs/{job_id}``),
never the raw path, so a caller cannot mint keys with made-up paths. Every ``interval_s`` (and at
shutdown) one audit row per key is appended through the SM3 chain: action ``auth.failed`` (401) or
``access.denied`` (403), target ``<METHOD> <template>``, detail ``{status, count, first, last}``.

Only a 401 lets a caller choose its subject (any string is a token to hash), so those keys are
capped per interval (``max_keys``): once the cap is reached, a new token is counted under the
subject ``(others)`` of its method, template and status. A flood of distinct bad tokens thus
makes at most ``max_keys`` rows plus one per route per interval, no request goes uncounted, and
it cannot push anyone else's failures out: ``anonymous`` and the 403s of authenticated callers
(tokens an admin issued) are never folded. Memory is bounded the same way. A flush that fails
(the database is down) keeps its counts for the next one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.store import audit_chain
from controller.store.store import Store, now

log = logging.getLogger("yiwang.audit")

ACTIONS = {401: "auth.failed", 403: "access.denied"}
ANONYMOUS = "anonymous"
OTHERS = "(others)"  # the subject of keys beyond max_keys in one interval
UNMATCHED = "(unmatched)"  # no route template (never the raw path)

Key = tuple[str, str, str, int]  # (subject, method, template, status)


def token_subject(token: str | None) -> str:
    """How a 401 names its caller: a prefix of the presented token's SHA-256, or anonymous."""
    if not token:
        return ANONYMOUS
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass
class Tally:
    role: str
    tenant: str | None
    first: datetime
    last: datetime
    count: int = 0


class DenialAudit:
    def __init__(self, store: Store, *, interval_s: float = 60.0, max_keys: int = 1000) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._tallies: dict[Key, Tally] = {}
        self._capped = 0  # keys of caller-chosen subjects (401 with a token) this interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- counting (the request path: a dict update under a lock) -------------------------------
    def note(
        self,
        subject: str,
        method: str,
        template: str,
        status: int,
        *,
        role: str = "none",
        tenant: str | None = None,
        count: int = 1,
        first: datetime | None = None,
        last: datetime | None = None,
    ) -> None:
        if status not in ACTIONS:
            return
        t = last or now()
        with self._lock:
            self._add((subject, method, template, status), role, tenant, count, first or t, t)

    def _add(
        self, key: Key, role: str, tenant: str | None, count: int, first: datetime, last: datetime
    ) -> None:
        tally = self._tallies.get(key)
        if tally is None and key[3] == 401 and key[0] not in (ANONYMOUS, OTHERS):
            if self._capped >= self.max_keys:
                key = (OTHERS, key[1], key[2], key[3])
                role, tenant = "none", None
                tally = self._tallies.get(key)
            else:
                self._capped += 1
        if tally is None:
            tally = self._tallies[key] = Tally(role, tenant, first, last)
        tally.count += count
        tally.first, tally.last = min(tally.first, first), max(tally.last, last)

    def pending(self) -> int:
        """Keys counted since the last flush."""
        with self._lock:
            return len(self._tallies)

    # ---- flushing ----------------------------------------------------------------------------
    def flush(self) -> int:
        """Append one audit row per key counted since the last flush; the number of rows."""
        with self._flush_lock:
            with self._lock:
                tallies, self._tallies, self._capped = self._tallies, {}, 0
            if not tallies:
                return 0
            at = now()
            rows = [self._row(key, tally, at) for key, tally in sorted(tallies.items(), key=_order)]
            try:
                with self.store.tx() as conn:
                    audit_chain.append(conn, rows)
            except Exception:
                log.exception(
                    "could not write %d denied-access audit rows; kept for the next flush", len(rows)
                )
                with self._lock:
                    for key, tally in tallies.items():
                        self._add(key, tally.role, tally.tenant, tally.count, tally.first, tally.last)
                return 0
            return len(rows)

    @staticmethod
    def _row(key: Key, tally: Tally, at: datetime) -> dict[str, Any]:
        subject, method, template, status = key
        return {
            "at": at,
            "actor": subject,
            "role": tally.role,
            "tenant": tally.tenant,
            "action": ACTIONS[status],
            "target": f"{method} {template}"[:200],
            "detail": {
                "status": status,
                "count": tally.count,
                "first": tally.first.isoformat(),
                "last": tally.last.isoformat(),
            },
        }

    # ---- background ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="yiwang-denied-audit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the flusher and write what is left (shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()


def _order(item: tuple[Key, Tally]) -> tuple[str, str, str, int]:
    return item[0]
