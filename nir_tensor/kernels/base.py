"""What a kernel module provides: per op, a ``prepare`` and an optional support predicate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir import Node

Run = Callable[[list[np.ndarray | None]], list[np.ndarray]]


@dataclass(frozen=True, slots=True)
class Kernel:
    prepare: Callable[[Node], Run]
    problem: Callable[[Node], str | None] | None = None  # None or why it cannot run the node
