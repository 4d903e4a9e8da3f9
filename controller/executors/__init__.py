"""Executors: how a member cluster's agent runs its assignments (interface in base.py).

``make_executor(kind, **options)`` builds one by name: ``local`` (the embedded default),
``kubernetes`` or ``simulated``; the options are the chosen class's keyword arguments.
"""

from __future__ import annotations

from typing import Any

from controller.executors.base import (
    ExecutionNotFound,
    ExecutionStatus,
    Executor,
    ExecutorUnavailable,
    ResourceAmounts,
)
from controller.executors.kubernetes import KubernetesExecutor
from controller.executors.local import LocalExecutor
from controller.executors.simulated import SimNode, SimulatedExecutor, VirtualClock

EXECUTOR_KINDS = ("local", "kubernetes", "simulated")

__all__ = [
    "EXECUTOR_KINDS",
    "ExecutionNotFound",
    "ExecutionStatus",
    "Executor",
    "ExecutorUnavailable",
    "KubernetesExecutor",
    "LocalExecutor",
    "ResourceAmounts",
    "SimNode",
    "SimulatedExecutor",
    "VirtualClock",
    "make_executor",
]


def make_executor(kind: str, **options: Any) -> Executor:
    """Build an executor.

    - ``local``: ``base_dir`` (required), ``kill_grace_s``, ``capacity``, ``tail_bytes``, ...
    - ``kubernetes``: ``capacity`` (required), ``client`` (a KubeClient; default: the official
      client from in-cluster config or ``kubeconfig``/``context``), ``options`` (KubeOptions).
    - ``simulated``: ``nodes`` (SimNode or dicts of its fields, required), ``clock``,
      ``time_scale``, ``failure_rate``, ``seed``.
    """
    if kind == "local":
        return LocalExecutor(**options)
    if kind == "kubernetes":
        client = options.pop("client", None)
        kubeconfig = options.pop("kubeconfig", None)
        context = options.pop("context", None)
        if client is None:
            from controller.executors.kube_client import OfficialKubeClient

            client = OfficialKubeClient.from_config(kubeconfig, context)
        return KubernetesExecutor(client, **options)
    if kind == "simulated":
        nodes = [n if isinstance(n, SimNode) else SimNode(**n) for n in options.pop("nodes", [])]
        return SimulatedExecutor(nodes, **options)
    raise ValueError(f"unknown executor kind {kind!r}; expected one of {', '.join(EXECUTOR_KINDS)}")
