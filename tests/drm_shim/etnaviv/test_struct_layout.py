"""The etnaviv UAPI structs as declared once in util.uapi (cffi) against Linux: the system's
``drm/etnaviv_drm.h`` when installed, and always a C transcription compiled with gcc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mesa_npu.util.uapi import ffi

# (struct, fields) of include/uapi/drm/etnaviv_drm.h
STRUCTS = {
    "drm_etnaviv_timespec": ["tv_sec", "tv_nsec"],
    "drm_etnaviv_param": ["pipe", "param", "value"],
    "drm_etnaviv_gem_new": ["size", "flags", "handle"],
    "drm_etnaviv_gem_info": ["handle", "pad", "offset"],
    "drm_etnaviv_gem_cpu_prep": ["handle", "op", "timeout"],
    "drm_etnaviv_gem_cpu_fini": ["handle", "flags"],
    "drm_etnaviv_gem_submit_reloc": ["submit_offset", "reloc_idx", "reloc_offset", "flags"],
    "drm_etnaviv_gem_submit_bo": ["flags", "handle", "presumed"],
    "drm_etnaviv_gem_submit_pmr": [
        "flags", "domain", "pad", "signal", "sequence", "read_offset", "read_idx",
    ],
    "drm_etnaviv_gem_submit": [
        "fence", "pipe", "exec_state", "nr_bos", "nr_relocs", "stream_size", "bos", "relocs",
        "stream", "flags", "fence_fd", "pmrs", "nr_pmrs", "pad",
    ],
    "drm_etnaviv_wait_fence": ["pipe", "fence", "flags", "pad", "timeout"],
    "drm_etnaviv_gem_wait": ["pipe", "handle", "flags", "pad", "timeout"],
}  # fmt: skip

# A transcription of the Linux header's structs (types as the header spells them).
TRANSCRIPTION = """
#include <stdint.h>
typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;
typedef int32_t __s32; typedef int64_t __s64;
struct drm_etnaviv_timespec { __s64 tv_sec; __s64 tv_nsec; };
struct drm_etnaviv_param { __u32 pipe; __u32 param; __u64 value; };
struct drm_etnaviv_gem_new { __u64 size; __u32 flags; __u32 handle; };
struct drm_etnaviv_gem_info { __u32 handle; __u32 pad; __u64 offset; };
struct drm_etnaviv_gem_cpu_prep { __u32 handle; __u32 op; struct drm_etnaviv_timespec timeout; };
struct drm_etnaviv_gem_cpu_fini { __u32 handle; __u32 flags; };
struct drm_etnaviv_gem_submit_reloc { __u32 submit_offset; __u32 reloc_idx; __u64 reloc_offset;
  __u32 flags; };
struct drm_etnaviv_gem_submit_bo { __u32 flags; __u32 handle; __u64 presumed; };
struct drm_etnaviv_gem_submit_pmr { __u32 flags; __u8 domain; __u8 pad; __u16 signal;
  __u32 sequence; __u32 read_offset; __u32 read_idx; };
struct drm_etnaviv_gem_submit { __u32 fence; __u32 pipe; __u32 exec_state; __u32 nr_bos;
  __u32 nr_relocs; __u32 stream_size; __u64 bos; __u64 relocs; __u64 stream; __u32 flags;
  __s32 fence_fd; __u64 pmrs; __u32 nr_pmrs; __u32 pad; };
struct drm_etnaviv_wait_fence { __u32 pipe; __u32 fence; __u32 flags; __u32 pad;
  struct drm_etnaviv_timespec timeout; };
struct drm_etnaviv_gem_wait { __u32 pipe; __u32 handle; __u32 flags; __u32 pad;
  struct drm_etnaviv_timespec timeout; };
"""
HEADERS = (Path("/usr/include/drm/etnaviv_drm.h"), Path("/usr/include/libdrm/etnaviv_drm.h"))
SYSTEM_HEADER = next((h for h in HEADERS if h.exists()), HEADERS[0])


def _c_layout(tmp_path: Path, prelude: str) -> dict[str, list[int]]:
    lines = [prelude, "#include <stdio.h>", "#include <stddef.h>", "int main(void) {"]
    for struct, fields in STRUCTS.items():
        offs = " ".join(f'printf(" %zu", offsetof(struct {struct}, {f}));' for f in fields)
        lines.append(f'printf("{struct} %zu", sizeof(struct {struct})); {offs} printf("\\n");')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {line.split()[0]: [int(v) for v in line.split()[1:]] for line in out.splitlines()}


def _cffi_layout() -> dict[str, list[int]]:
    return {
        s: [ffi.sizeof(f"struct {s}")] + [ffi.offsetof(f"struct {s}", f) for f in fields]
        for s, fields in STRUCTS.items()
    }


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_structs_match_a_c_transcription(tmp_path):
    assert _c_layout(tmp_path, TRANSCRIPTION) == _cffi_layout()


@pytest.mark.skipif(
    not SYSTEM_HEADER.exists() or shutil.which("gcc") is None,
    reason=f"{SYSTEM_HEADER} not installed (Debian: linux-libc-dev) or no gcc",
)
def test_structs_match_the_system_header(tmp_path):
    prelude = "#include <stdint.h>\n#include <linux/types.h>\n"
    assert _c_layout(tmp_path, prelude + f'#include "{SYSTEM_HEADER}"') == _cffi_layout()
