"""Interfaces the domain services depend on. Only domain types cross them."""

from tam.ports.providers import (
    CompanySource,
    Discovery,
    DiscoveryQuery,
    EmailFinder,
    EmailFound,
    LinkedinCheck,
    LinkedinChecker,
    LinkedinChecks,
    LinkedinTarget,
    LLMQualifier,
    PeopleFound,
    PersonSearch,
    Verdict,
)
from tam.ports.runtime import Clock, ConcurrencyLimiter, JobDispatcher
from tam.ports.storage import CompanyPage, CompanyRepo, ContactRepo, ImportResult, JobRepo, ProjectRepo

__all__ = [
    "Clock",
    "CompanyPage",
    "CompanyRepo",
    "CompanySource",
    "ConcurrencyLimiter",
    "ContactRepo",
    "Discovery",
    "DiscoveryQuery",
    "EmailFinder",
    "EmailFound",
    "ImportResult",
    "JobDispatcher",
    "JobRepo",
    "LLMQualifier",
    "LinkedinCheck",
    "LinkedinChecker",
    "LinkedinChecks",
    "LinkedinTarget",
    "PeopleFound",
    "PersonSearch",
    "ProjectRepo",
    "Verdict",
]
