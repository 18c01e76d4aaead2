"""Teflon: the TFLite frontend and external delegate (Mesa: src/gallium/frontends/teflon)."""
