"""Gang fit, the static half: all replicas of a job start together on one cluster or none start.
A cluster whose whole capacity cannot hold the gang never will (waiting does not help), and when
a cluster declares its node shape (labels ``node-cpu``, ``node-memory-gib``, ``node-gpu``) a
replica larger than one node cannot start there. The dynamic half (the gang fits the free
capacity now, reserved as one unit) is the capacity plugin's."""

from __future__ import annotations

import numpy as np

from controller.scheduler.framework import CodeArray, CycleState, FilterResult, FloatArray, JobInfo, Snapshot

NAME = "gang"
REASON_GANG = "the gang of all replicas does not fit the cluster even when empty"
REASON_NODE = "one replica is larger than a node of the cluster"
NODE_LABELS = ("node-cpu", "node-memory-gib", "node-gpu")


def node_shape(labels: dict[str, str]) -> tuple[float, float, float] | None:
    if not any(k in labels for k in NODE_LABELS):
        return None
    try:
        return tuple(float(labels.get(k, "inf")) for k in NODE_LABELS)  # type: ignore[return-value]
    except ValueError:
        return None


def node_matrix(snap: Snapshot) -> FloatArray:
    """Per cluster, its declared node shape (cpu, memory GiB, gpu), infinite when not declared."""
    out = np.full((snap.size, 3), np.inf)
    for i, labels in enumerate(snap.labels):
        shape = node_shape(labels)
        if shape is not None:
            out[i] = shape
    return out


def filter_many(
    per_replica: FloatArray, demand: FloatArray, nodes: FloatArray, capacity: FloatArray
) -> CodeArray:
    """``filter``'s codes for many jobs (rows of ``per_replica`` and ``demand``) at once."""
    codes = np.zeros((len(demand), len(capacity)), dtype=np.int16)
    larger = np.zeros(codes.shape, dtype=bool)
    small = np.zeros(codes.shape, dtype=bool)
    for r in range(3):  # per resource, element by element
        larger |= per_replica[:, r, None] > nodes[None, :, r]
        small |= capacity[None, :, r] < demand[:, r, None]
    codes[larger] = 2
    codes[small] = 1
    return codes


class GangFilter:
    NAME = NAME

    def filter(self, state: CycleState, job: JobInfo, snap: Snapshot) -> FilterResult:
        codes = np.zeros(snap.size, dtype=np.int16)
        r = job.spec.resources
        per_replica = (r.cpu, r.memory_gib, r.gpus)
        for i, labels in enumerate(snap.labels):
            shape = node_shape(labels)
            if shape is not None and any(need > have for need, have in zip(per_replica, shape, strict=True)):
                codes[i] = 2
        codes[(snap.capacity < job.demand).any(axis=1)] = 1
        return FilterResult(codes, [REASON_GANG, REASON_NODE], unresolvable=True)
