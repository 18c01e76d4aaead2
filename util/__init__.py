"""Shared helpers: the register database and its generators, bit packing, fixed point,
and the compiled-subgraph container."""
