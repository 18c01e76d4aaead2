"""The accel/rocket UAPI structs and ioctl numbers of ``util.uapi`` against a C transcription of
Linux ``include/uapi/drm/rocket_accel.h`` in kernel style (``__u32``/``__u64`` from
``<linux/types.h>``, ``DRM_IOW``/``DRM_IOWR`` spelled with ``<linux/ioctl.h>``), compiled with
gcc."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mesa_npu.util import uapi

FIELDS = {
    "drm_rocket_create_bo": ("size", "handle", "dma_address", "offset"),
    "drm_rocket_task": ("regcmd", "regcmd_count"),
    "drm_rocket_job": ("tasks", "in_bo_handles", "out_bo_handles", "task_count",
                       "task_struct_size", "in_bo_handle_count", "out_bo_handle_count"),
    "drm_rocket_submit": ("jobs", "job_count", "job_struct_size", "reserved"),
    "drm_rocket_prep_bo": ("handle", "reserved", "timeout_ns"),
    "drm_rocket_fini_bo": ("handle", "reserved"),
}  # fmt: skip

HEADER = r"""
#include <stddef.h>
#include <stdio.h>
#include <linux/ioctl.h>
#include <linux/types.h>

struct drm_rocket_create_bo { __u32 size; __u32 handle; __u64 dma_address; __u64 offset; };
struct drm_rocket_task { __u32 regcmd; __u32 regcmd_count; };
struct drm_rocket_job {
	__u64 tasks;
	__u64 in_bo_handles;
	__u64 out_bo_handles;
	__u32 task_count;
	__u32 task_struct_size;
	__u32 in_bo_handle_count;
	__u32 out_bo_handle_count;
};
struct drm_rocket_submit { __u64 jobs; __u32 job_count; __u32 job_struct_size; __u64 reserved; };
struct drm_rocket_prep_bo { __u32 handle; __u32 reserved; __s64 timeout_ns; };
struct drm_rocket_fini_bo { __u32 handle; __u32 reserved; };

#define DRM_IOCTL_BASE 'd'
#define DRM_COMMAND_BASE 0x40
#define DRM_IOW(nr, type) _IOW(DRM_IOCTL_BASE, nr, type)
#define DRM_IOWR(nr, type) _IOWR(DRM_IOCTL_BASE, nr, type)
#define DRM_IOCTL_ROCKET_CREATE_BO DRM_IOWR(DRM_COMMAND_BASE + 0x00, struct drm_rocket_create_bo)
#define DRM_IOCTL_ROCKET_SUBMIT DRM_IOW(DRM_COMMAND_BASE + 0x01, struct drm_rocket_submit)
#define DRM_IOCTL_ROCKET_PREP_BO DRM_IOW(DRM_COMMAND_BASE + 0x02, struct drm_rocket_prep_bo)
#define DRM_IOCTL_ROCKET_FINI_BO DRM_IOW(DRM_COMMAND_BASE + 0x03, struct drm_rocket_fini_bo)
"""


def _program() -> str:
    lines = [HEADER, "int main(void) {"]
    for struct, fields in FIELDS.items():
        lines.append(f'printf("{struct} sizeof %zu\\n", sizeof(struct {struct}));')
        for f in fields:
            lines.append(f'printf("{struct} {f} %zu\\n", offsetof(struct {struct}, {f}));')
    for name in ("CREATE_BO", "SUBMIT", "PREP_BO", "FINI_BO"):
        lines.append(f'printf("ioctl {name} %lu\\n", (unsigned long)DRM_IOCTL_ROCKET_{name});')
    lines.append("return 0; }")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict[tuple[str, str], int]:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: the UAPI layout check compiles a C transcription")
    tmp = tmp_path_factory.mktemp("rocket_uapi")
    src, exe = tmp / "layout.c", tmp / "layout"
    src.write_text(_program())
    subprocess.run([gcc, "-Wall", "-Werror", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {(a, b): int(c) for a, b, c in (line.split() for line in out.splitlines())}


@pytest.mark.parametrize("struct", FIELDS)
def test_struct_layout_matches_c(c_layout, struct):
    ffi = uapi.ffi
    assert ffi.sizeof(f"struct {struct}") == c_layout[(struct, "sizeof")]
    for f in FIELDS[struct]:
        assert ffi.offsetof(f"struct {struct}", f) == c_layout[(struct, f)], f


def test_ioctl_numbers_match_c(c_layout):
    for name in ("CREATE_BO", "SUBMIT", "PREP_BO", "FINI_BO"):
        assert getattr(uapi, f"ROCKET_{name}") == c_layout[("ioctl", name)], name


def test_every_field_of_the_cffi_structs_is_checked():
    ffi = uapi.ffi
    for struct, fields in FIELDS.items():
        assert tuple(name for name, _ in ffi.typeof(f"struct {struct}").fields) == fields
