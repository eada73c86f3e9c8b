"""``make bench``: every benchmark in turn, each with its baseline from the same run."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path

logging.basicConfig(level=logging.ERROR)

for module in sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])):
    if module in ("site", "__main__"):
        continue
    bench = importlib.import_module(f"bench.{module}")
    if hasattr(bench, "main"):
        print(f"\n== {module} ==")
        bench.main([])
