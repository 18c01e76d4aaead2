"""The delegate's compiled-subgraph cache (option ``cache=DIR``).

Compiling is separate from executing (Gallium v2): a partition compiles to a blob, and a context
deserializes it. With a cache directory the delegate keeps each blob under a key computed from
the driver and everything the compiler sees (op types, parameters, tensor indices, shapes,
types, quantization and a digest of constant data), and deserializes it instead of compiling when
the key is found. The blob is trusted as the driver's own: a blob that does not fit its
partition is the device's to reject, at deserialize or invoke time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from ....gallium.operation import PipeMlOperation
from ....gallium.tensor import PipeTensor

# Bump when the key's content changes, so that old files are never read under new meaning.
KEY_FORMAT = 1


def _tensor_key(t: PipeTensor | None) -> tuple:
    if t is None:
        return ()
    digest = hashlib.sha256(t.data.tobytes()).hexdigest() if t.data is not None else ""
    return (t.index, t.dims, t.rank, t.type.name, repr(t.quant), t.is_external_output, digest)


def blob_key(driver: str, ops: Sequence[PipeMlOperation]) -> str:
    """The cache key of a partition compiled by ``driver``."""
    parts = [f"teflon-blob-{KEY_FORMAT}", driver]
    for op in ops:
        ins = tuple(_tensor_key(t) for t in op.inputs)
        outs = tuple(_tensor_key(t) for t in op.outputs)
        parts.append(repr((op.type.name, op.params, ins, outs)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class BlobCache:
    directory: str

    def path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.blob")

    def load(self, key: str) -> bytes | None:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def store(self, key: str, blob: bytes) -> None:
        """Write atomically, so a concurrent reader never sees half a blob."""
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, self.path(key))
        except BaseException:
            os.unlink(tmp)
            raise
