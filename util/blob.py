"""A small self-describing container for compiled subgraphs.

Layout: ``MNPU`` magic, a u32 format version, a u32 header length, a UTF-8 JSON header, then
64-byte-aligned data sections. The header holds plain metadata plus, under ``sections``, the
name, offset, size and (for arrays) dtype and shape of each section. Every driver serializes
through this so a blob names its driver and cannot be fed to the wrong one unnoticed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

MAGIC = b"MNPU"
VERSION = 1
ALIGN = 64


class BlobError(ValueError):
    pass


def pack(driver: str, meta: Mapping[str, Any], sections: Mapping[str, bytes | np.ndarray]) -> bytes:
    entries, chunks, offset = {}, [], 0
    for name, data in sections.items():
        if isinstance(data, np.ndarray):
            raw = np.ascontiguousarray(data).tobytes()
            entry = {"dtype": data.dtype.str, "shape": list(data.shape)}
        else:
            raw, entry = bytes(data), {}
        entries[name] = {**entry, "offset": offset, "size": len(raw)}
        pad = -len(raw) % ALIGN
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    header = json.dumps(
        {"driver": driver, "meta": meta, "sections": entries}, separators=(",", ":"), sort_keys=True
    ).encode()
    header += b" " * (-(12 + len(header)) % ALIGN)
    return MAGIC + struct.pack("<II", VERSION, len(header)) + header + b"".join(chunks)


def unpack(blob: bytes, driver: str) -> tuple[dict[str, Any], dict[str, bytes | np.ndarray]]:
    """(meta, sections) of a blob made by :func:`pack` for ``driver``."""
    if len(blob) < 12 or blob[:4] != MAGIC:
        raise BlobError("not a compiled subgraph (bad magic)")
    version, hlen = struct.unpack_from("<II", blob, 4)
    if version != VERSION:
        raise BlobError(f"blob format version {version}, expected {VERSION}")
    try:
        header = json.loads(blob[12 : 12 + hlen])
    except ValueError as e:
        raise BlobError(f"corrupt blob header: {e}") from None
    if header.get("driver") != driver:
        raise BlobError(f"blob was compiled for '{header.get('driver')}', not '{driver}'")
    base, sections = 12 + hlen, {}
    for name, e in header["sections"].items():
        start, end = base + e["offset"], base + e["offset"] + e["size"]
        if end > len(blob):
            raise BlobError(f"section '{name}' runs past the end of the blob")
        raw = blob[start:end]
        if "dtype" in e:
            sections[name] = np.frombuffer(raw, dtype=e["dtype"]).reshape(e["shape"]).copy()
        else:
            sections[name] = raw
    return header["meta"], sections
