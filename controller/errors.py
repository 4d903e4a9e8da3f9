"""Domain errors. Each maps to one HTTP status in controller/api/errors.py, and only there."""

from __future__ import annotations


class YiwangError(Exception):
    """Base of every expected error; never used for bugs."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(YiwangError):
    status = 404
    title = "Not found"


class Conflict(YiwangError):
    status = 409
    title = "Conflict"


class IllegalTransition(Conflict):
    title = "Illegal phase transition"


class InvalidPolicy(YiwangError):
    status = 422
    title = "Invalid policy"


class InvalidInput(YiwangError):
    status = 422
    title = "Invalid input"


class Forbidden(YiwangError):
    status = 403
    title = "Forbidden"


class Unauthorized(YiwangError):
    status = 401
    title = "Unauthorized"


class StaleAttempt(Conflict):
    """A report for an attempt or fencing epoch that is no longer current."""

    title = "Stale attempt"


class StaleLeader(Conflict):
    """A write on behalf of a leader whose epoch is no longer current (fencing): refused."""

    title = "Stale leader epoch"


class TemporarilyUnavailable(YiwangError):
    """Retryable: the caller should try again after ``retry_after`` seconds."""

    status = 503
    title = "Temporarily unavailable"

    def __init__(self, detail: str, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreUnavailable(TemporarilyUnavailable):
    """The store cannot take a read or a write now: its primary is gone, read-only (being
    demoted) or failing over. Nothing was acknowledged; the same request (with the same
    Idempotency-Key) may be sent again after ``retry_after`` seconds."""

    title = "Store unavailable"
