"""Speed benchmarks: each module has ``run(cfg)`` and prints a ratio to a baseline it runs too."""
from __future__ import annotations

import pkgutil


def available() -> list[str]:
    """Names of the benchmark modules present in this version."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
