"""The stored form of a scheduling decision's body (packed JSON), shared by the scheduler that
writes decisions in bulk (``controller.scheduler.stored``) and the store that reads them back."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson

PACKED_DECISION = "yiwang.decision.zlib/1"


def pack_decision(body: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a decision body: its JSON, zlib-compressed (level 1) and base64-encoded,
    beside its summary (which the audit log and operators read). A cycle writes one per job;
    packed they are a third of the bytes (about 850 instead of 2,500 for the 1+32+8 federation),
    and the bytes are most of what the scheduling leader writes while it holds the database."""
    raw = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return {
        "format": PACKED_DECISION,
        "summary": body.get("summary", ""),
        "z": base64.b64encode(zlib.compress(raw, 1)).decode("ascii"),
    }


def unpack_decision(stored: dict[str, Any]) -> dict[str, Any]:
    """The decision body ``pack_decision`` stored (bodies stored unpacked come back as they are)."""
    if stored.get("format") != PACKED_DECISION:
        return stored
    body: dict[str, Any] = orjson.loads(zlib.decompress(base64.b64decode(stored["z"])))
    return body
