"""NPU drivers: each owns its hardware (Mesa: src/gallium/drivers)."""
