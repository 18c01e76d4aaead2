"""Simulated kernel devices that execute the bytes drivers submit (Mesa: src/drm-shim)."""
