"""Teflon: the TFLite frontend and external delegate (Mesa: src/gallium/frontends/teflon)."""

from .delegate import library_path

__all__ = ["library_path"]
