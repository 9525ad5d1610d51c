"""RedisLimiter: per-provider concurrency that holds across every process sharing one Redis.

Each provider has a sorted set of leases scored by their expiry (Redis server time, so hosts with
skewed clocks agree). Acquiring runs one Lua script: drop expired leases, count, add if below
capacity. A held lease is renewed in the background; a process that dies (even SIGKILL) stops
renewing, so its slots free themselves within one lease TTL.

Rate-limit pressure is shared too: a hash per provider holds the adaptive cap (the AdaptiveCap rule
of the LocalLimiter, in Lua) and a `not_before` pause set from Retry-After; acquiring honours both,
so every process slows down when any of them is told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tam.adapters.http import reveal
from tam.domain.model import Pressure, TransientProviderError

log = logging.getLogger(__name__)

# KEYS[1] lease set, KEYS[2] rate state; ARGV: token, capacity, ttl_ms.
# Returns {1, now_ms, cap*1000} when the lease was taken, {0, 0, cap*1000} when the (adaptive)
# limit is full, {-1, wait_ms, cap*1000} while the provider is paused after a Retry-After.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[2])
local cap = tonumber(redis.call('HGET', KEYS[2], 'cap') or capacity)
local milli = math.floor(math.min(cap, capacity) * 1000)
local not_before = tonumber(redis.call('HGET', KEYS[2], 'not_before') or 0)
if now < not_before then
  return {-1, not_before - now, milli}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < math.max(1, math.min(capacity, math.floor(cap))) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return {1, now, milli}
end
return {0, 0, milli}
"""

# KEYS[1] rate state; ARGV: pressure, capacity, slot start (ms), retry_after (ms), state ttl (ms).
# The AdaptiveCap rule of tam.adapters.memory.runtime, shared by every process. Returns cap*1000.
_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[2])
local cap = math.min(tonumber(redis.call('HGET', KEYS[1], 'cap') or capacity), capacity)
if ARGV[1] == 'throttled' then
  local cut_at = tonumber(redis.call('HGET', KEYS[1], 'cut_at') or -1)
  if tonumber(ARGV[3]) >= cut_at then
    cap = math.max(1, cap / 2)
    redis.call('HSET', KEYS[1], 'cut_at', tostring(now))
  end
  local retry = tonumber(ARGV[4])
  if retry > 0 then
    local not_before = tonumber(redis.call('HGET', KEYS[1], 'not_before') or 0)
    if now + retry > not_before then
      redis.call('HSET', KEYS[1], 'not_before', tostring(now + retry))
    end
  end
elseif ARGV[1] == 'near' then
  cap = math.max(1, cap - 1 / cap)
else
  cap = math.min(capacity, cap + 1 / cap)
end
redis.call('HSET', KEYS[1], 'cap', tostring(cap))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return math.floor(cap * 1000)
"""

# The Redis time (ms) at which the current task took its last lease: `report` follows `slot`.
_slot_started: ContextVar[int] = ContextVar("redis_slot_started", default=-1)

# KEYS[1] lease set; ARGV: ttl_ms, tokens... Pushes the expiry of leases still held.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kept = 0
for i = 2, #ARGV do
  kept = kept + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return kept
"""


class RedisLimiter:
    def __init__(
        self,
        url: Any,
        capacities: Mapping[str, int],
        *,
        default: int = 1,
        prefix: str = "tam",
        lease_ttl: float = 15.0,
        poll: tuple[float, float] = (0.02, 0.25),
        redis_unavailable_after: float = 10.0,
        rate_state_ttl: float = 600.0,
    ) -> None:
        self._url = reveal(url) or "redis://127.0.0.1:6379/0"
        self._capacities = dict(capacities)
        self._default = default
        self._prefix = prefix
        self._ttl_ms = max(int(lease_ttl * 1000), 1000)
        self._poll_min, self._poll_max = poll
        self._unavailable_after = redis_unavailable_after
        self._redis: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held: dict[str, set[str]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._state_ttl_ms = int(rate_state_ttl * 1000)
        self._cap_seen: dict[str, float] = {}  # the shared adaptive cap, as last read from Redis

    def capacity(self, provider: str) -> int:
        return self._capacities.get(provider, self._default)

    def key(self, provider: str) -> str:
        return f"{self._prefix}:limit:{provider}"

    def rate_key(self, provider: str) -> str:
        """A hash: the adaptive cap, when it was last cut and the pause (`not_before`, ms)."""
        return f"{self._prefix}:rate:{provider}"

    def _client(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            self._redis = Redis.from_url(self._url, socket_connect_timeout=2, socket_timeout=5)
            self._loop = loop
            self._held = {}
            self._renewer = None
        return self._redis

    @asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[None]:
        token = await self._acquire(provider)
        self._held.setdefault(provider, set()).add(token)
        self._ensure_renewer()
        try:
            yield
        finally:
            self._held.get(provider, set()).discard(token)
            with contextlib.suppress(RedisError, OSError):
                # Shielded so a cancelled call still gives its slot back at once.
                await asyncio.shield(self._client().zrem(self.key(provider), token))

    async def _acquire(self, provider: str) -> str:
        """Waits (without blocking the loop, never raising for a full limit) until a lease is free."""
        token = uuid.uuid4().hex
        pause = self._poll_min
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                keys = (self.key(provider), self.rate_key(provider))
                status, when, milli = await self._client().eval(
                    _ACQUIRE, 2, *keys, token, self.capacity(provider), self._ttl_ms
                )
                failing_since = None
                self._cap_seen[provider] = int(milli) / 1000
            except (RedisError, OSError) as exc:
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since >= self._unavailable_after:
                    raise TransientProviderError(provider, f"concurrency limiter unreachable (Redis): {exc}") from exc
                status = 0
            if status == 1:
                _slot_started.set(int(when))
                return token
            if status == -1:  # paused after a Retry-After: everyone waits it out, then polls afresh
                await asyncio.sleep(int(when) / 1000 + random.uniform(0, self._poll_min))
                pause = self._poll_min
                continue
            # Jittered, growing pauses: waiters in many processes do not poll in lockstep.
            await asyncio.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 1.5, self._poll_max)

    async def report(self, provider: str, pressure: Pressure, retry_after: float | None = None) -> None:
        capacity = self.capacity(provider)
        if pressure is Pressure.EASY and self._cap_seen.get(provider, capacity) >= capacity:
            return  # nothing to grow back: no round trip on the common path
        retry_ms = int(retry_after * 1000) if pressure is Pressure.THROTTLED and retry_after else 0
        try:
            milli = await self._client().eval(
                _REPORT,
                1,
                self.rate_key(provider),
                pressure.value,
                capacity,
                _slot_started.get(),
                retry_ms,
                self._state_ttl_ms,
            )
            self._cap_seen[provider] = int(milli) / 1000
        except (RedisError, OSError) as exc:
            log.warning("could not report %s pressure to Redis: %s", provider, exc)

    async def allowed(self, provider: str) -> int:
        """Calls allowed in flight right now across every process (for tests and health checks)."""
        raw = await self._client().hget(self.rate_key(provider), "cap")
        capacity = self.capacity(provider)
        return capacity if raw is None else max(1, min(capacity, int(float(raw))))

    async def paused_for(self, provider: str) -> float:
        """Seconds left of a shared pause after a Retry-After (0 when not paused)."""
        client = self._client()
        raw = await client.hget(self.rate_key(provider), "not_before")
        now_s, now_us = await client.time()
        return 0.0 if raw is None else max(0.0, (float(raw) - (now_s * 1000 + now_us // 1000)) / 1000)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(), name="redis-limiter-renew")

    async def _renew_forever(self) -> None:
        interval = self._ttl_ms / 1000 / 3
        while any(self._held.values()):
            await asyncio.sleep(interval)
            for provider, tokens in list(self._held.items()):
                if not tokens:
                    continue
                try:
                    await self._client().eval(_RENEW, 1, self.key(provider), self._ttl_ms, *tokens)
                except (RedisError, OSError) as exc:
                    log.warning("could not renew %s leases: %s", provider, exc)

    async def in_use(self, provider: str) -> int:
        """Leases not yet expired (for tests and health checks)."""
        client = self._client()
        now_s, now_us = await client.time()
        now_ms = now_s * 1000 + now_us // 1000
        return int(await client.zcount(self.key(provider), now_ms + 1, "+inf"))

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        redis, self._redis = self._redis, None
        if redis is not None and self._loop is asyncio.get_running_loop():
            await redis.aclose()
