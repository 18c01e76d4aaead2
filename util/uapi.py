"""Kernel UAPI of the two NPUs, declared once: structs (cffi) and ioctl request numbers.

The layouts follow Linux's ``include/uapi/drm/rocket_accel.h`` (accel/rocket, Linux 6.18) and
``include/uapi/drm/etnaviv_drm.h``, transcribed as facts. Both sides of the kernel boundary use
this module: a driver's winsys fills these structs and issues the ioctl (on the real device node
or on the simulated device), and ``drm_shim`` decodes the same structs from memory, the way the
kernel copies them from user space.
"""

from __future__ import annotations

import cffi

CDEF = """
/* accel/rocket */
struct drm_rocket_create_bo { uint32_t size; uint32_t handle; uint64_t dma_address;
                              uint64_t offset; };
struct drm_rocket_task { uint32_t regcmd; uint32_t regcmd_count; };
struct drm_rocket_job { uint64_t tasks; uint64_t in_bo_handles; uint64_t out_bo_handles;
                        uint32_t task_count; uint32_t task_struct_size;
                        uint32_t in_bo_handle_count; uint32_t out_bo_handle_count; };
struct drm_rocket_submit { uint64_t jobs; uint32_t job_count; uint32_t job_struct_size;
                           uint64_t reserved; };
struct drm_rocket_prep_bo { uint32_t handle; uint32_t reserved; int64_t timeout_ns; };
struct drm_rocket_fini_bo { uint32_t handle; uint32_t reserved; };

/* DRM core */
struct drm_gem_close { uint32_t handle; uint32_t pad; };

/* etnaviv */
struct drm_etnaviv_timespec { int64_t tv_sec; int64_t tv_nsec; };
struct drm_etnaviv_param { uint32_t pipe; uint32_t param; uint64_t value; };
struct drm_etnaviv_gem_new { uint64_t size; uint32_t flags; uint32_t handle; };
struct drm_etnaviv_gem_info { uint32_t handle; uint32_t pad; uint64_t offset; };
struct drm_etnaviv_gem_cpu_prep { uint32_t handle; uint32_t op;
                                  struct drm_etnaviv_timespec timeout; };
struct drm_etnaviv_gem_cpu_fini { uint32_t handle; uint32_t flags; };
struct drm_etnaviv_gem_submit_reloc { uint32_t submit_offset; uint32_t reloc_idx;
                                      uint64_t reloc_offset; uint32_t flags; };
struct drm_etnaviv_gem_submit_bo { uint32_t flags; uint32_t handle; uint64_t presumed; };
struct drm_etnaviv_gem_submit_pmr { uint32_t flags; uint8_t domain; uint8_t pad;
                                    uint16_t signal; uint32_t sequence; uint32_t read_offset;
                                    uint32_t read_idx; };
struct drm_etnaviv_gem_submit { uint32_t fence; uint32_t pipe; uint32_t exec_state;
                                uint32_t nr_bos; uint32_t nr_relocs; uint32_t stream_size;
                                uint64_t bos; uint64_t relocs; uint64_t stream; uint32_t flags;
                                int32_t fence_fd; uint64_t pmrs; uint32_t nr_pmrs;
                                uint32_t pad; };
struct drm_etnaviv_wait_fence { uint32_t pipe; uint32_t fence; uint32_t flags; uint32_t pad;
                                struct drm_etnaviv_timespec timeout; };
struct drm_etnaviv_gem_wait { uint32_t pipe; uint32_t handle; uint32_t flags; uint32_t pad;
                              struct drm_etnaviv_timespec timeout; };
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)

# <asm-generic/ioctl.h>: dir in bits 31:30, size 29:16, type 15:8, number 7:0.
_IOC_WRITE = 1
_IOC_READ = 2
DRM_IOCTL_BASE = ord("d")
DRM_COMMAND_BASE = 0x40


def _ioc(direction: int, nr: int, struct: str) -> int:
    return (direction << 30) | (ffi.sizeof(struct) << 16) | (DRM_IOCTL_BASE << 8) | nr


def drm_iow(nr: int, struct: str) -> int:
    return _ioc(_IOC_WRITE, DRM_COMMAND_BASE + nr, struct)


def drm_iowr(nr: int, struct: str) -> int:
    return _ioc(_IOC_WRITE | _IOC_READ, DRM_COMMAND_BASE + nr, struct)


# DRM core (<drm/drm.h>): DRM_IOW(0x09, struct drm_gem_close), below DRM_COMMAND_BASE.
DRM_IOCTL_GEM_CLOSE = _ioc(_IOC_WRITE, 0x09, "struct drm_gem_close")


# accel/rocket: /dev/accel/accel0
ROCKET_CREATE_BO = drm_iowr(0x00, "struct drm_rocket_create_bo")
ROCKET_SUBMIT = drm_iow(0x01, "struct drm_rocket_submit")
ROCKET_PREP_BO = drm_iow(0x02, "struct drm_rocket_prep_bo")
ROCKET_FINI_BO = drm_iow(0x03, "struct drm_rocket_fini_bo")

# etnaviv: /dev/dri/renderD*
ETNAVIV_GET_PARAM = drm_iowr(0x00, "struct drm_etnaviv_param")
ETNAVIV_GEM_NEW = drm_iowr(0x02, "struct drm_etnaviv_gem_new")
ETNAVIV_GEM_INFO = drm_iowr(0x03, "struct drm_etnaviv_gem_info")
ETNAVIV_GEM_CPU_PREP = drm_iow(0x04, "struct drm_etnaviv_gem_cpu_prep")
ETNAVIV_GEM_CPU_FINI = drm_iow(0x05, "struct drm_etnaviv_gem_cpu_fini")
ETNAVIV_GEM_SUBMIT = drm_iowr(0x06, "struct drm_etnaviv_gem_submit")
ETNAVIV_WAIT_FENCE = drm_iow(0x07, "struct drm_etnaviv_wait_fence")
ETNAVIV_GEM_WAIT = drm_iow(0x09, "struct drm_etnaviv_gem_wait")

ETNAVIV_PARAM_GPU_MODEL = 0x01
ETNAVIV_PARAM_GPU_REVISION = 0x02
ETNAVIV_PARAM_GPU_FEATURES_0 = 0x03
ETNAVIV_PARAM_GPU_PRODUCT_ID = 0x1C
ETNAVIV_PARAM_GPU_CUSTOMER_ID = 0x1D
ETNAVIV_PARAM_GPU_ECO_ID = 0x1E
ETNAVIV_PARAM_SOFTPIN_START_ADDR = 0x1B
ETNAVIV_PARAM_GPU_FEATURES_COUNT = 7  # FEATURES_0..6 at 0x03..0x09

ETNA_BO_CACHED = 0x00010000
ETNA_BO_WC = 0x00020000
ETNA_BO_UNCACHED = 0x00040000
ETNA_BO_CACHE_MASK = 0x000F0000
ETNA_BO_FORCE_MMU = 0x00100000
ETNA_PREP_READ = 0x01
ETNA_PREP_WRITE = 0x02
ETNA_PREP_NOSYNC = 0x04
ETNA_SUBMIT_BO_READ = 0x0001
ETNA_SUBMIT_BO_WRITE = 0x0002
ETNA_SUBMIT_NO_IMPLICIT = 0x0001
ETNA_SUBMIT_FENCE_FD_IN = 0x0002
ETNA_SUBMIT_FENCE_FD_OUT = 0x0004
ETNA_SUBMIT_SOFTPIN = 0x0008  # Linux: userspace chooses every BO's GPU address (presumed)
ETNA_PIPE_3D = 0x00
ETNA_PIPE_2D = 0x01
ETNA_PIPE_VG = 0x02
ETNA_MAX_PIPES = 4
ETNA_WAIT_NONBLOCK = 0x01

ROCKET_NODE_GLOB = "/dev/accel/accel*"
ETNAVIV_NODE_GLOB = "/dev/dri/renderD*"
