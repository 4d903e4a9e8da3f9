"""The stored form of a scheduling decision's body (packed JSON), shared by the scheduler that
writes decisions in bulk (``controller.scheduler.stored``) and the store that reads them back."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import zstandard

PACKED_DECISION = "yiwang.decision.zlib/1"
# A part whose bytes are one zstd frame (``pack_frame``): a body's ``blob`` reference names it
# with this fourth element, and its offset and length are in the frame's decompressed bytes.
FRAME = "zstd"
FRAME_LEVEL = 1  # zstd's level 1: a cycle's packed columns 2.9x smaller at about 4 us a decision


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


def pack_frame(data: bytes, compressor: zstandard.ZstdCompressor | None = None) -> bytes:
    """``data`` as one zstd frame (its size recorded in the frame's header)."""
    return (compressor or zstandard.ZstdCompressor(level=FRAME_LEVEL)).compress(data)


def unpack_frame(frame: bytes) -> bytes:
    """The bytes ``pack_frame`` packed."""
    return zstandard.ZstdDecompressor().decompress(frame)


def resolve_parts(
    body: dict[str, Any],
    context: Callable[[str], dict[str, Any]],
    piece: Callable[[str, int, int], bytes],
    frame: Callable[[str], bytes] | None = None,
) -> dict[str, Any]:
    """A stored body in the columns format with what it names filled in, as
    ``Decision.model_validate`` expands it: its context's fields (``ctx``: ``names``,
    ``plugins``, ``cols``), its slice of the cycle's packed columns (``blob``: ``bytes``) and its
    explanation (``why``: ``rejected`` and ``summary``, shared by the cycle's decisions that
    explain alike). ``context(key)`` reads a part's JSON, ``piece(key, offset, length)`` a slice
    of a part's bytes, ``frame(key)`` the decompressed bytes of a part stored as a zstd frame
    (a ``blob`` reference of four elements, the fourth ``FRAME``: the offset and length are in
    those bytes). Other bodies come back as they are."""
    key = body.get("ctx")
    body = {**context(key), **body} if isinstance(key, str) else dict(body)
    ref = body.get("blob")
    if isinstance(ref, list) and len(ref) == 3:
        body["bytes"] = piece(str(ref[0]), int(ref[1]), int(ref[2]))
    elif isinstance(ref, list) and len(ref) == 4 and ref[3] == FRAME:
        if frame is None:
            raise ValueError("a body naming a zstd frame is read with frame()")
        offset, length = int(ref[1]), int(ref[2])
        body["bytes"] = frame(str(ref[0]))[offset : offset + length]
    why = body.get("why")
    if isinstance(why, list) and len(why) == 3:
        raw = piece(str(why[0]), int(why[1]), int(why[2]))
        explained = orjson.loads(raw) if raw else {}
        body["rejected"] = explained.get("rejected", [])
        body["summary"] = explained.get("summary", "")
    return body
