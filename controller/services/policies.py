"""Policies: the current policy set of this process and the scheduler built from its placement
policy. At start-up the files of ``policies/`` are merged with the versions stored by the API
(a stored policy wins; one the API would refuse falls back to the file's, logged); ``put``
validates a new policy, cross-checks it against the rest and the scheduler's plugins, stores it
(its audit row in the same transaction) and swaps it in; ``replace`` is the swap (the follower
calls it for a policy another process stored).

Dependencies: the store, the controller's lock, the settings (where the files are), the
follower (a callable: it is built after the policies; it need not reload what was applied here)
and the controller's wake-up of its loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from controller.errors import InvalidPolicy
from controller.follower import StoreFollower
from controller.policies import POLICY_KINDS, PolicySet, cross_check, validate_kind
from controller.scheduler.plugins import FILTER_PLUGINS, SCORE_PLUGINS
from controller.scheduler.scheduler import Scheduler
from controller.services.policy_files import load_policy_set
from controller.settings import Settings
from controller.store.store import Store

log = logging.getLogger("yiwang.controller")


class PolicyService:
    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        settings: Settings,
        *,
        follower: Callable[[], StoreFollower | None],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.lock = lock
        self.settings = settings
        self.follower = follower
        self.wake = wake
        self.policies = self.load_policies()
        self.scheduler = Scheduler.from_policy(self.policies.placement)

    def load_policies(self) -> PolicySet:
        files = load_policy_set(self.settings.policies_dir)
        stored = self.store.get_policies()
        merged: dict[str, Any] = {"topology": files.topology}
        for kind in POLICY_KINDS:
            if kind in stored:
                try:
                    merged[kind] = validate_kind(kind, stored[kind]["body"])
                except InvalidPolicy as exc:
                    # A stored policy the API would refuse (written by hand, or before a bound
                    # existed): start on the file's policy and say so; the row stays for review.
                    log.error(
                        "stored %s policy (version %s) is invalid, using %s/%s.yaml: %s",
                        kind,
                        stored[kind]["version"],
                        self.settings.policies_dir,
                        kind,
                        exc.errors[:3],
                    )
                    merged[kind] = getattr(files, kind)
            else:
                # Seed it, unless another process starting at the same moment just did: then
                # theirs stands (same files, and the version stays 1).
                seeded = self.store.seed_policy(kind, getattr(files, kind).model_dump(mode="json"))
                merged[kind] = validate_kind(kind, seeded)
        return PolicySet.model_validate(merged)

    def replace(self, policies: PolicySet) -> None:
        """Swap in a validated policy set (callers hold the lock)."""
        placement_changed = policies.placement != self.policies.placement
        self.policies = policies
        if placement_changed:
            self.scheduler = Scheduler.from_policy(policies.placement)

    def put(self, kind: str, body: Any, audit: dict[str, Any] | None = None) -> tuple[BaseModel, int]:
        """Validate, cross-check against the rest, then swap; an invalid policy changes nothing.
        ``audit`` is appended in the policy's transaction, with the new version in its detail."""
        model = validate_kind(kind, body)
        candidate = PolicySet.model_validate({**self.policies.__dict__, kind: model})
        errors = cross_check(candidate, set(FILTER_PLUGINS), set(SCORE_PLUGINS))
        if errors:
            raise InvalidPolicy(f"{kind} policy is invalid", errors=errors)
        version = self.store.put_policy(kind, model.model_dump(mode="json"), audit=audit)
        with self.lock:
            self.replace(candidate)
            follower = self.follower()
            if follower is not None:  # already applied here: the next sync need not reload it
                follower.policy_versions[kind] = version
        self.wake()
        return model, version
