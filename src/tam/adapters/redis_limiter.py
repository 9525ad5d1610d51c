"""RedisLimiter: the pacer's state in Redis, so the budgets hold across every worker process.

Per provider: a sorted set of leases scored by their expiry (Redis server time, so hosts with skewed
clocks agree; each lease named after its process), a hash with the adaptive cap, the Retry-After
pause, the learned limits and one GCRA theoretical arrival time per rate budget, a sorted set of
recent 429s for the refusal guard, and a sorted set of the processes waiting for a slot.
One Lua script does a whole round trip: it applies the releases this process gathered (slots given
back, 429s, learned limits, token corrections), renews the leases it still holds, then admits and
reserves the start time of its callers in order, so a busy provider costs less than one round trip
per call. It mirrors tam.adapters.memory.pacer.MemoryPacerState (the waiters and the shares are
Redis's own: memory has one process).

A held lease is renewed (inside admissions, or in the background when none comes); a process that
dies (even SIGKILL) stops renewing, so its slots free themselves within one lease TTL. The client
counts every command it sends (`commands`, `by_command`) for the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from tam.adapters.http import reveal
from tam.adapters.memory.pacer import as_budgets
from tam.adapters.pacer import Ask, Decision, Pace, PacedSlots, Release, StateUnreachable, Status

log = logging.getLogger(__name__)


# KEYS: leases, state, refusals, waiters. ARGV: see RedisPacerState._args. Returns {status, wait_ms, now_ms,
# charged, others, then wait_ms and charged of each call admitted after the first}.
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local S = KEYS[2]
local mine = ARGV[1]
local capacity = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local burst = tonumber(ARGV[8])
local ahead = tonumber(ARGV[9])
local most = tonumber(ARGV[10])
local window = tonumber(ARGV[11])
local adaptive = ARGV[13] == '1'
local pace = ARGV[14] == '1'
local batch_window = tonumber(ARGV[15])
local n_asks = tonumber(ARGV[16])
local n_renew = tonumber(ARGV[17])
local n_releases = tonumber(ARGV[18])
local asks_at = 18
local renew_at = asks_at + 4 * n_asks
local releases_at = renew_at + n_renew
local function num(field, default)
  local v = redis.call('HGET', S, field)
  if v then return tonumber(v) end
  return default
end
-- the smaller of the configured (ARGV) and the learned per-minute limit of budget i; 0: none
local function limit(i)
  local cfg = tonumber(ARGV[3 + i])
  local seen = num('lim' .. i, 0)
  if cfg > 0 and seen > 0 then return math.min(cfg, seen) end
  if cfg > 0 then return cfg end
  return seen
end
-- leases this process still holds, renewed on the way (no separate round trip while it is busy)
for i = 1, n_renew do
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[renew_at + i])
end
local cap = math.min(num('cap', capacity), capacity)
local cut_at = num('cut_at', -1)
local not_before = num('not_before', 0)
-- releases: ARGV[a+1] token, +2 started, +3 answered, +4 throttled, +5 retry_ms,
-- +6..8 cost corrections, +9..11 learned limits (-1 none), +12..14 remaining (-1 none),
-- +15 budgets charged at admission (bit i-1), +16..18 spent, +19 kept (the lease went on to another call)
for r = 0, n_releases - 1 do
  local a = releases_at + r * 19
  if ARGV[a + 19] ~= '1' then redis.call('ZREM', KEYS[1], ARGV[a + 1]) end
  if ARGV[a + 4] == '1' then
    if adaptive and tonumber(ARGV[a + 2]) >= cut_at then
      cap = math.max(1, cap / 2)
      cut_at = now
    end
    not_before = math.max(not_before, now + tonumber(ARGV[a + 5]))
    if most > 0 then
      redis.call('ZADD', KEYS[3], now, ARGV[a + 1])
      redis.call('PEXPIRE', KEYS[3], math.ceil(window))
    end
  elseif ARGV[a + 3] == '1' then
    redis.call('HSET', S, 'learned', '1')
    if adaptive then cap = math.min(capacity, cap + 1 / cap) end
    for i = 1, 3 do
      local seen = tonumber(ARGV[a + 8 + i])
      if seen > 0 then redis.call('HSET', S, 'lim' .. i, tostring(seen)) end
    end
    for i = 1, 3 do
      local l = limit(i)
      if l > 0 then
        local interval = 60000 / l
        local tat
        if math.floor(tonumber(ARGV[a + 15]) / 2 ^ (i - 1)) % 2 == 1 then
          tat = num('tat' .. i, 0) + tonumber(ARGV[a + 5 + i]) * interval
        else  -- admitted before this limit was known (the probe): it counts whole
          tat = math.max(num('tat' .. i, 0), now) + tonumber(ARGV[a + 14 + i]) * interval
        end
        local left = tonumber(ARGV[a + 11 + i])
        if left >= 0 then tat = math.max(tat, now + burst - left * interval) end
        redis.call('HSET', S, 'tat' .. i, tostring(tat))
      end
    end
  end
end
redis.call('HSET', S, 'cap', tostring(cap), 'cut_at', tostring(cut_at), 'not_before', tostring(not_before))
redis.call('PEXPIRE', S, tonumber(ARGV[12]))
if n_renew > 0 then redis.call('PEXPIRE', KEYS[1], ttl * 2) end
local allowed = capacity
if adaptive then allowed = math.max(1, math.min(capacity, math.floor(cap))) end
if ARGV[7] == '1' and pace and not redis.call('HGET', S, 'learned') then allowed = 1 end
local refused = 0
if most > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  refused = redis.call('ZCARD', KEYS[3])
  allowed = math.min(allowed, math.max(1, most - refused))  -- a call in flight may be one more 429
end
-- Slots held by this process (`ours`) and the other processes holding or waiting for slots. While
-- another process waits, this one takes no more than its share, so the slot it gives back with this
-- very admission can go to them; at its share it waits for one of its own to come back.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = 0
local ours = 0
local procs = {}
local n_procs = 0
for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  held = held + 1
  local p = string.sub(token, 1, #mine)
  if p == mine then
    ours = ours + 1
  elseif not procs[p] then
    procs[p] = true
    n_procs = n_procs + 1
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local waiting = 0
for _, p in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if p ~= mine then
    waiting = waiting + 1
    if not procs[p] then
      procs[p] = true
      n_procs = n_procs + 1
    end
  end
end
local share = allowed
if waiting > 0 then share = math.max(1, math.ceil(allowed / (n_procs + 1))) end
if n_asks == 0 then  -- releases only: does another process wait for slots this one holds beyond its share?
  if waiting > 0 and ours > share then return {2, 0, math.floor(now), 0, 1} end
  return {2, 0, math.floor(now), 0, 0}
end
if now < not_before then return {-1, math.ceil(not_before - now), math.floor(now), 0, 0} end
if most > 0 and refused >= most then
  local oldest = redis.call('ZRANGE', KEYS[3], refused - most, refused - most, 'WITHSCORES')
  return {-2, math.ceil(tonumber(oldest[2]) + window - now), math.floor(now), 0, 0}
end
local out = {}
local first = now
local last = now
for k = 0, n_asks - 1 do
  if held >= allowed or (waiting > 0 and ours >= share) then
    if k > 0 then break end
    redis.call('ZADD', KEYS[4], now + 1000, mine)  -- we wait too: the others hear it
    redis.call('PEXPIRE', KEYS[4], 2000)
    -- below its share, the slot it waits for comes from another process (poll); else from its own
    if ours < share then return {0, 0, math.floor(now), 0, 1} end
    return {0, 0, math.floor(now), 0, 0}
  end
  local at = asks_at + 4 * k
  local start = now
  if pace then
    for i = 1, 3 do
      local l = limit(i)
      local c = tonumber(ARGV[at + 1 + i])
      if l > 0 and c > 0 then
        local interval = 60000 / l
        local after = math.max(num('tat' .. i, 0), now) + c * interval
        start = math.max(start, after - math.max(burst, c * interval))
      end
    end
  end
  if k == 0 and start - now > ahead then return {-3, math.ceil(start - now - ahead), math.floor(now), 0, 0} end
  if start - now > ahead or (k >= 2 and start > first + batch_window) then break end
  local charged = 0
  if pace then
    for i = 1, 3 do
      local l = limit(i)
      if l > 0 then
        local tat = math.max(num('tat' .. i, 0), start) + tonumber(ARGV[at + 1 + i]) * 60000 / l
        redis.call('HSET', S, 'tat' .. i, tostring(tat))
        charged = charged + 2 ^ (i - 1)
      end
    end
  end
  redis.call('ZADD', KEYS[1], start + ttl, ARGV[at + 1])
  held = held + 1
  ours = ours + 1
  if k == 0 then
    first = start
    redis.call('ZREM', KEYS[4], mine)
  end
  last = math.max(last, start)
  out[#out + 1] = math.ceil(start - now)
  out[#out + 1] = charged
end
redis.call('PEXPIRE', KEYS[1], ttl * 2 + math.ceil(last - now))
local reply = {1, out[1], math.floor(now), out[2], 0}
for j = 3, #out do reply[#reply + 1] = out[j] end
return reply
"""

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


def _minus_one(value: float | None) -> float:
    return -1 if value is None else value


class RedisPacerState:
    shared = True

    def __init__(
        self,
        url: Any,
        *,
        prefix: str = "tam",
        lease_ttl: float = 15.0,
        rate_state_ttl: float = 600.0,
        adaptive: bool = True,
        pace: bool = True,
        burst: float = 1.0,
        ahead: float = 5.0,
        batch_window: float = 0.25,
    ) -> None:
        self._url = reveal(url) or "redis://127.0.0.1:6379/0"
        self._prefix = prefix
        self._ttl_ms = max(int(lease_ttl * 1000), 1000)
        self._state_ttl_ms = int(rate_state_ttl * 1000)
        self._adaptive = adaptive
        self._pace = pace
        self._burst_ms = burst * 1000
        self._ahead_ms = ahead * 1000
        self._batch_window_ms = batch_window * 1000
        self._id = uuid.uuid4().hex[:12]  # this process's leases start with it
        self._redis: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._script: Any = None
        self._held: dict[str, dict[str, float]] = {}  # provider -> token -> loop time its lease was renewed
        self._renewer: asyncio.Task[None] | None = None
        self.renewals = 0  # round trips that only renewed leases
        self.commands = 0  # every command sent to Redis, connection set-up included (counted at the client)
        self.by_command: dict[str, int] = {}  # the same, by command name

    def key(self, provider: str) -> str:
        return f"{self._prefix}:limit:{provider}"

    def rate_key(self, provider: str) -> str:
        """A hash: the adaptive cap, when it was last cut, the pause (`not_before`, ms), the learned
        limits (`lim1..3`) and the buckets' theoretical arrival times (`tat1..3`, ms)."""
        return f"{self._prefix}:rate:{provider}"

    def refusals_key(self, provider: str) -> str:
        return f"{self._prefix}:refusals:{provider}"

    def waiters_key(self, provider: str) -> str:
        """A sorted set: the processes that found every slot taken within the last second."""
        return f"{self._prefix}:waiters:{provider}"

    def client(self) -> Redis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            self._redis = Redis.from_pool(self._counted_pool())
            self._script = self._redis.register_script(_PACE)  # EVALSHA, loaded on first use
            self._loop = loop
            self._held = {}
            self._renewer = None
        return self._redis

    def _counted_pool(self) -> ConnectionPool:
        """A pool whose connections count every command they send (a pipelined connection set-up,
        HELLO/CLIENT SETINFO/SELECT, counts one per command), so `commands` is what Redis served us."""
        pool = ConnectionPool.from_url(self._url, socket_connect_timeout=2, socket_timeout=5)
        base: Any = pool.connection_class
        state = self

        class Counted(base):  # type: ignore[misc]
            async def send_command(self, *args: Any, **kwargs: Any) -> None:
                name = str(args[0]).upper() if args else "?"
                state.by_command[name] = state.by_command.get(name, 0) + 1
                await super().send_command(*args, **kwargs)

            async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
                state.commands += 1
                await super().send_packed_command(command, check_health)

        pool.connection_class = Counted
        return pool

    def _member(self, token: str) -> str:
        """A lease's name in Redis: this process's id first, so a full provider can tell whether the
        slots are all ours (then a release here is the one to wait for) or others' too (poll)."""
        return f"{self._id}:{token}"

    def _args(self, budget: Pace, asks: Sequence[Ask], renew: Sequence[str], releases: Sequence[Release]) -> list[Any]:
        guard_most, guard_window = budget.guard or (0, 0.0)
        args: list[Any] = [
            f"{self._id}:",
            budget.capacity,
            self._ttl_ms,
            *(0 if v is None else v for v in budget.limits.values()),
            1 if budget.learns else 0,
            self._burst_ms,
            self._ahead_ms,
            guard_most,
            guard_window * 1000,
            self._state_ttl_ms,
            1 if self._adaptive else 0,
            1 if self._pace else 0,
            self._batch_window_ms,
            len(asks),
            len(renew),
            len(releases),
        ]
        for token, cost in asks:
            args += [self._member(token), cost.requests, cost.input_tokens, cost.output_tokens]
        args += [self._member(token) for token in renew]
        for r in releases:
            c = r.correction
            args += [self._member(r.token), r.started, int(r.answered), int(r.throttled), r.retry_after * 1000]
            args += [c.requests, c.input_tokens, c.output_tokens]
            args += [_minus_one(v) for v in r.limits.values()]
            args += [_minus_one(v) for v in r.remaining.values()]
            args += [r.charged, r.spent.requests, r.spent.input_tokens, r.spent.output_tokens, int(r.kept)]
        return args

    async def _run(self, provider: str, budget: Pace, asks: Sequence[Ask], releases: Sequence[Release]) -> Any:
        keys = [self.key(provider), self.rate_key(provider), self.refusals_key(provider), self.waiters_key(provider)]
        held = self._held.setdefault(provider, {})
        for r in releases:
            if not r.kept:
                held.pop(r.token, None)
        loop = asyncio.get_running_loop()
        # Leases held a while are renewed by this round trip: the renewer only sends the others.
        renew = [token for token, renewed in held.items() if loop.time() - renewed >= self._ttl_ms / 1000 / 4]
        try:
            client = self.client()
            reply = await self._script(keys=keys, args=self._args(budget, asks, renew, releases), client=client)
        except (RedisError, OSError) as exc:
            raise StateUnreachable(f"Redis: {exc}") from exc
        for token in renew:
            if token in held:
                held[token] = loop.time()
        return reply

    async def admit(
        self, provider: str, budget: Pace, asks: Sequence[Ask], releases: Sequence[Release]
    ) -> list[Decision]:
        status, wait_ms, now_ms, charged, others, *more = await self._run(provider, budget, asks, releases)
        first = Decision(Status(int(status)), int(wait_ms) / 1000, float(now_ms), int(charged), int(others))
        if first.status is not Status.ADMITTED:
            return [first]
        decisions = [first]
        for j in range(0, len(more), 2):
            decisions.append(Decision(Status.ADMITTED, int(more[j]) / 1000, float(now_ms), int(more[j + 1])))
        held = self._held.setdefault(provider, {})
        now = asyncio.get_running_loop().time()
        for (token, _cost), decision in zip(asks, decisions, strict=False):
            held[token] = now + decision.wait  # the lease runs from the reserved start
        self._ensure_renewer()
        return decisions

    async def release(self, provider: str, budget: Pace, releases: Sequence[Release]) -> int:
        _status, _wait, _now, _charged, others, *_ = await self._run(provider, budget, (), releases)
        return int(others)

    def release_now(self, provider: str, budget: Pace, releases: Sequence[Release]) -> bool:
        return False  # a round trip: the releases wait for the next admission, or a short flush

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(), name="redis-pacer-renew")

    async def _renew_forever(self) -> None:
        """Pushes the expiry of leases no admission renewed for half their TTL (a busy provider's
        admissions renew them on the way; most calls end sooner anyway)."""
        every = self._ttl_ms / 1000 / 4
        loop = asyncio.get_running_loop()
        while any(self._held.values()):
            await asyncio.sleep(every)
            for provider, held in list(self._held.items()):
                old = [token for token, renewed in list(held.items()) if loop.time() - renewed >= 2 * every]
                if not old:
                    continue
                try:
                    self.renewals += 1
                    members = [self._member(token) for token in old]
                    await self.client().eval(_RENEW, 1, self.key(provider), self._ttl_ms, *members)
                except (RedisError, OSError) as exc:
                    log.warning("could not renew %s leases: %s", provider, exc)
                else:
                    for token in old:
                        if token in held:
                            held[token] = loop.time()

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        redis, self._redis = self._redis, None
        if redis is not None and self._loop is asyncio.get_running_loop():
            await redis.aclose()


class RedisLimiter(PacedSlots):
    """The pacer across every process sharing one Redis (REDIS_URL)."""

    def __init__(
        self,
        url: Any,
        budgets: Mapping[str, Pace | int],
        *,
        default: int = 1,
        prefix: str = "tam",
        lease_ttl: float = 15.0,
        poll: tuple[float, float] = (0.02, 0.25),
        redis_unavailable_after: float = 10.0,
        rate_state_ttl: float = 600.0,
        adaptive: bool = True,
        pace: bool = True,
        burst: float = 1.0,
    ) -> None:
        self.redis = RedisPacerState(
            url,
            prefix=prefix,
            lease_ttl=lease_ttl,
            rate_state_ttl=rate_state_ttl,
            adaptive=adaptive,
            pace=pace,
            burst=burst,
        )
        super().__init__(
            self.redis, as_budgets(budgets), Pace(default), poll=poll, unavailable_after=redis_unavailable_after
        )

    def key(self, provider: str) -> str:
        return self.redis.key(provider)

    def rate_key(self, provider: str) -> str:
        return self.redis.rate_key(provider)

    async def allowed(self, provider: str) -> int:
        """Calls allowed in flight right now across every process (for tests and health checks)."""
        await self.drain()
        raw = await self.redis.client().hget(self.rate_key(provider), "cap")
        capacity = self.capacity(provider)
        return capacity if raw is None else max(1, min(capacity, math.floor(float(raw))))

    async def paused_for(self, provider: str) -> float:
        """Seconds left of a shared pause after a Retry-After (0 when not paused)."""
        await self.drain()
        client = self.redis.client()
        raw = await client.hget(self.rate_key(provider), "not_before")
        now_s, now_us = await client.time()
        return 0.0 if raw is None else max(0.0, (float(raw) - (now_s * 1000 + now_us / 1000)) / 1000)

    async def in_use(self, provider: str) -> int:
        """Leases not yet expired (for tests and health checks)."""
        await self.drain()
        client = self.redis.client()
        now_s, now_us = await client.time()
        now_ms = now_s * 1000 + now_us // 1000
        return int(await client.zcount(self.key(provider), now_ms + 1, "+inf"))
