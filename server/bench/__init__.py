"""./run.sh bench [ROWS]: our import and psql \\copy of the same file, side by side, in one run.

Machines here are noisy, so absolute seconds mean little; the ratio of two
runs made minutes apart on the same server and the same file is the figure.
"""
from __future__ import annotations

from .runner import run_api_bench, run_bench

__all__ = ["run_api_bench", "run_bench"]
