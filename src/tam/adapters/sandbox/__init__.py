"""Simulated providers for demos and load tests: deterministic answers from a seed, log-normal
latency and optional faults. Everything they produce is marked `source = sandbox`."""

from tam.adapters.sandbox.providers import (
    SandboxBehaviour,
    SandboxCompanySource,
    SandboxEmailFinder,
    SandboxLinkedinChecker,
    SandboxPersonSearch,
    SandboxQualifier,
    SandboxUsageForecaster,
)
from tam.ports.providers import Vendors
from tam.ports.runtime import Clock

__all__ = [
    "SandboxBehaviour",
    "SandboxCompanySource",
    "SandboxEmailFinder",
    "SandboxLinkedinChecker",
    "SandboxPersonSearch",
    "SandboxQualifier",
    "SandboxUsageForecaster",
    "sandbox_vendors",
]


def sandbox_vendors(clock: Clock, seed: int, latency: float, fault_rate: float) -> Vendors:
    """Every provider simulated (TAM_PROVIDERS=sandbox): seeded answers, latency and faults."""
    b = SandboxBehaviour(clock, seed, latency, fault_rate=fault_rate)
    return Vendors(
        SandboxQualifier(b),
        SandboxCompanySource(b),
        SandboxPersonSearch(b),
        SandboxEmailFinder(b),
        SandboxLinkedinChecker(b),
        SandboxUsageForecaster(),
    )
