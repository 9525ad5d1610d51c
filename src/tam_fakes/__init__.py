"""Local fake servers for Anthropic, Prospeo, Bright Data and DiscoLike (tests and benchmarks).

They check auth headers, speak the documented shapes with deterministic data, and inject latency
and faults on demand; `state.requests` logs every request and `state.peak_in_flight` the peak load.
"""

from tam_fakes.base import FAULT_KINDS, FakeState, Recorded
from tam_fakes.server import FakeServer

__all__ = ["FAULT_KINDS", "FakeServer", "FakeState", "Recorded"]
