"""Prometheus metrics: provider calls as they happen, jobs and items read from the store at scrape time.

Provider calls are counted in the process that makes them. With several processes on one host (the
API and `tam worker`), set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by all of them before
they start: prometheus_client then writes every process's samples there and /metrics sums them; the
calls in flight of a process that has exited (or was killed) are dropped at the next scrape. Jobs
and items come from the store, so they are the whole system's whatever process answers the scrape.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from tam.domain.model import Job, JobStatus, JobType
from tam.domain.pricing import PriceTable
from tam.ports.runtime import CallOutcome
from tam.ports.storage import JobRepo

# Provider calls take from tens of milliseconds (a cached enrich) to a minute (a big discovery).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class PrometheusCallObserver:
    """A CallObserver that records calls in flight, latencies by outcome, 429s and retries."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir or None
        # A registry per observer (not the global one), so several containers in one process never clash.
        self.registry = CollectorRegistry(auto_describe=True)
        self._in_flight = Gauge(
            "tam_provider_calls_in_flight",
            "Provider calls in flight",
            ["provider"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._latency = Histogram(
            "tam_provider_call_seconds",
            "Duration of one provider call, by how it ended",
            ["provider", "outcome"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self._throttled = Counter(
            "tam_provider_throttled",
            "Provider answers refused for the rate limit (HTTP 429)",
            ["provider"],
            registry=self.registry,
        )
        self._retries = Counter(
            "tam_provider_retries",
            "Provider calls retried after a transient error",
            ["provider"],
            registry=self.registry,
        )

        # The labelled children, kept: `labels()` takes a lock and builds a key on every call.
        self._in_flight_of: dict[str, Any] = {}
        self._latency_of: dict[tuple[str, str], Any] = {}

    def _gauge(self, provider: str) -> Any:
        gauge = self._in_flight_of.get(provider)
        if gauge is None:
            gauge = self._in_flight_of[provider] = self._in_flight.labels(provider)
        return gauge

    def call_started(self, provider: str) -> None:
        self._gauge(provider).inc()

    def call_finished(self, provider: str, seconds: float, outcome: CallOutcome) -> None:
        self._gauge(provider).dec()
        histogram = self._latency_of.get((provider, outcome))
        if histogram is None:
            histogram = self._latency_of[(provider, outcome)] = self._latency.labels(provider, outcome)
        histogram.observe(max(seconds, 0.0))
        if outcome == "throttled":
            self._throttled.labels(provider).inc()

    def call_retried(self, provider: str) -> None:
        self._retries.labels(provider).inc()

    def provider_metrics(self) -> Iterable[Metric]:
        if self.multiprocess_dir is None:
            return self.registry.collect()
        forget_dead_processes(self.multiprocess_dir)
        merged = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return merged.collect()


_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def forget_exited_processes() -> None:
    """After `tam worker`'s processes have exited: drop their calls in flight from /metrics
    (PROMETHEUS_MULTIPROC_DIR), which a scrape would otherwise do only at the next scrape."""
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        forget_dead_processes(directory)


def forget_dead_processes(multiprocess_dir: str) -> list[int]:
    """Drop the live gauges (calls in flight) of processes that no longer run on this host, with
    prometheus_client's own `mark_process_dead`: a worker killed mid-call would otherwise show its
    calls in flight for good. Counters and histograms of dead processes stay (they are history).
    Returns the pids forgotten."""
    dead: set[int] = set()
    try:
        names = os.listdir(multiprocess_dir)
    except OSError:
        return []
    for name in names:
        match = _LIVE_FILE.match(name)
        if match and not _running(pid := int(match.group(1))):
            dead.add(pid)
    for pid in sorted(dead):
        with contextlib.suppress(OSError):  # another process may be sweeping the same directory
            mark_process_dead(pid, multiprocess_dir)  # type: ignore[no-untyped-call]
    return sorted(dead)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class _Families:
    """Hands fixed metric families to a registry, for one scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def job_families(jobs: Iterable[Job], prices: PriceTable | None = None) -> list[Metric]:
    """Jobs by type and status, and items done and failed, usage and dollars summed per job type."""
    by_status: dict[tuple[str, str], int] = {(t.value, s.value): 0 for t in JobType for s in JobStatus}
    done: dict[str, int] = {t.value: 0 for t in JobType}
    failed: dict[str, int] = {t.value: 0 for t in JobType}
    usage: dict[tuple[str, str], int] = defaultdict(int)
    cost: dict[str, float] = {t.value: 0.0 for t in JobType}
    for job in jobs:
        if prices is not None:
            cost[job.job_type.value] += prices.cost(job.usage)
        by_status[job.job_type.value, job.status.value] += 1
        done[job.job_type.value] += job.items_done
        failed[job.job_type.value] += job.items_failed
        for unit, amount in job.usage.counts.items():
            usage[job.job_type.value, unit] += amount
    jobs_family = GaugeMetricFamily("tam_jobs", "Jobs in the store, by type and status", labels=["job_type", "status"])
    for (job_type, status), n in sorted(by_status.items()):
        jobs_family.add_metric([job_type, status], n)
    done_family = GaugeMetricFamily("tam_job_items_done", "Items finished, summed over jobs", labels=["job_type"])
    failed_family = GaugeMetricFamily("tam_job_items_failed", "Items failed, summed over jobs", labels=["job_type"])
    for job_type in sorted(done):
        done_family.add_metric([job_type], done[job_type])
        failed_family.add_metric([job_type], failed[job_type])
    usage_family = GaugeMetricFamily(
        "tam_job_usage",
        "Metered provider usage (tokens, credits, records), summed over jobs",
        labels=["job_type", "unit"],
    )
    for (job_type, unit), amount in sorted(usage.items()):
        usage_family.add_metric([job_type, unit], amount)
    # A counter: the dollars of stored jobs only grow (exposed as tam_cost_usd_total).
    cost_family = CounterMetricFamily(
        "tam_cost_usd", "What the jobs' provider usage cost in US dollars, by the price table", labels=["job_type"]
    )
    for job_type in sorted(cost):
        cost_family.add_metric([job_type], cost[job_type])
    families = [jobs_family, done_family, failed_family, usage_family]
    return families + ([cost_family] if prices is not None else [])


class PrometheusExposition:
    """The text that /metrics serves."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, observer: PrometheusCallObserver, jobs: JobRepo, prices: PriceTable | None = None) -> None:
        self._observer = observer
        self._jobs = jobs
        self._prices = prices

    async def render(self) -> bytes:
        # One read of the job table per scrape: jobs are few (a handful per project and step).
        families: list[Any] = job_families(await self._jobs.list(), self._prices)
        families += list(self._observer.provider_metrics())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(families))
        return generate_latest(registry)
