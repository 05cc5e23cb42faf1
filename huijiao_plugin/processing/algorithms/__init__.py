"""Registry of the provider's algorithms: one module per algorithm, listed here once."""

from __future__ import annotations

from huijiao_plugin.processing.algorithms.ellipsoidal_area import EllipsoidalAreaAlgorithm

ALGORITHMS = [
    EllipsoidalAreaAlgorithm,
]
