"""Application frontends (Mesa: src/gallium/frontends)."""
