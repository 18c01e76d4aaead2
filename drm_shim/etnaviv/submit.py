"""``GEM_SUBMIT`` as Linux's ``etnaviv_ioctl_gem_submit`` reads it: the struct, then the BO table,
relocations and command stream copied from process memory through the struct's pointers, and the
checks the kernel makes before a job is queued (``docs/etnaviv-npu-model.md`` §1).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np

from mesa_npu.util import uapi
from mesa_npu.util.drm import DrmError
from mesa_npu.util.uapi import ffi

SUBMIT_FLAGS = (
    uapi.ETNA_SUBMIT_NO_IMPLICIT
    | uapi.ETNA_SUBMIT_FENCE_FD_IN
    | uapi.ETNA_SUBMIT_FENCE_FD_OUT
    | uapi.ETNA_SUBMIT_SOFTPIN
)
FENCE_FDS = uapi.ETNA_SUBMIT_FENCE_FD_IN | uapi.ETNA_SUBMIT_FENCE_FD_OUT
BO_FLAGS = uapi.ETNA_SUBMIT_BO_READ | uapi.ETNA_SUBMIT_BO_WRITE
EXEC_STATES = (uapi.ETNA_PIPE_3D, uapi.ETNA_PIPE_2D, uapi.ETNA_PIPE_VG)
WORD = 4


@dataclass(frozen=True, slots=True)
class SubmitBo:
    flags: int
    handle: int
    presumed: int


@dataclass(frozen=True, slots=True)
class Reloc:
    submit_offset: int
    reloc_idx: int
    reloc_offset: int
    flags: int


@dataclass(frozen=True, slots=True)
class SubmitArgs:
    pipe: int
    exec_state: int
    flags: int
    bos: tuple[SubmitBo, ...]
    relocs: tuple[Reloc, ...]
    stream: np.ndarray  # u32 words, a copy

    @property
    def softpin(self) -> bool:
        return bool(self.flags & uapi.ETNA_SUBMIT_SOFTPIN)


def fail(code: int, message: str) -> DrmError:
    return DrmError(code, f"GEM_SUBMIT: {message}")


def _copy(address: int, count: int, ctype: str, what: str):
    """``count`` structs from user memory (the kernel's copy_from_user); EFAULT for null."""
    if count == 0:
        return []
    if address == 0:
        raise fail(errno.EFAULT, f"{what}: null pointer with {count} entries")
    ptr = ffi.cast(f"{ctype} *", address)
    return [ptr[i] for i in range(count)]


def read_submit(args, max_pipes: int) -> SubmitArgs:
    """Validate and copy a ``struct drm_etnaviv_gem_submit`` (cffi pointer) and what it points
    to, in the order Linux checks them."""
    if args.pipe >= max_pipes:
        raise fail(errno.EINVAL, f"pipe {args.pipe} out of range")
    if args.pipe != 0:
        raise fail(errno.ENXIO, f"no GPU core at pipe {args.pipe}")
    if args.stream_size % WORD:
        raise fail(errno.EINVAL, f"non-aligned cmdstream buffer size: {args.stream_size}")
    if args.exec_state not in EXEC_STATES:
        raise fail(errno.EINVAL, f"invalid exec_state {args.exec_state}")
    if args.flags & ~SUBMIT_FLAGS:
        raise fail(errno.EINVAL, f"invalid flags {args.flags:#x}")
    if args.flags & FENCE_FDS:
        raise fail(errno.EINVAL, "sync-file fences are not simulated")
    if args.nr_pmrs:
        raise fail(errno.EINVAL, "performance monitor requests are not simulated")
    if args.flags & uapi.ETNA_SUBMIT_SOFTPIN and args.nr_relocs:
        raise fail(errno.EINVAL, "relocations in a softpin submit")
    bos = tuple(
        SubmitBo(int(b.flags), int(b.handle), int(b.presumed))
        for b in _copy(args.bos, args.nr_bos, "struct drm_etnaviv_gem_submit_bo", "bos")
    )
    relocs = tuple(
        Reloc(int(r.submit_offset), int(r.reloc_idx), int(r.reloc_offset), int(r.flags))
        for r in _copy(args.relocs, args.nr_relocs, "struct drm_etnaviv_gem_submit_reloc", "relocs")
    )
    if args.stream_size and args.stream == 0:
        raise fail(errno.EFAULT, "stream: null pointer")
    raw = bytes(ffi.buffer(ffi.cast("char *", args.stream), args.stream_size))
    stream = np.frombuffer(raw, dtype="<u4").copy()
    for i, bo in enumerate(bos):
        if bo.flags & ~BO_FLAGS:
            raise fail(errno.EINVAL, f"invalid flags: {bo.flags:#x} (bo {i})")
    for r in relocs:
        if r.submit_offset % WORD or r.submit_offset + WORD > args.stream_size:
            raise fail(errno.EINVAL, f"relocation at {r.submit_offset} outside the stream")
        if r.reloc_idx >= len(bos):
            raise fail(errno.EINVAL, f"relocation index {r.reloc_idx} of {len(bos)} BOs")
        if r.flags:
            raise fail(errno.EINVAL, f"relocation flags {r.flags:#x}")
    return SubmitArgs(args.pipe, args.exec_state, args.flags, bos, relocs, stream)
