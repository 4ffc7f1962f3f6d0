"""Overload protection of one worker: per-client connections, per-client request rate, shedding.

All three are per worker process (like nginx's per-worker zones without shared
memory): with ``-w 4`` a client may hold four times ``--max-client-connections``
in the worst case. Tables are pruned on every sweep so an address flood cannot
grow them without bound, and each kind of refusal is logged at most once per
address per ``_LOG_EVERY_S``, never per request.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

# Final: compiled code calls the clock directly, not through a lookup in the module's globals.
monotonic: Final = time.monotonic

if TYPE_CHECKING:
    from porch.config.settings import Config

error_log = logging.getLogger("porch.error")

_LOG_EVERY_S = 10.0
_MAX_TRACKED = 100_000  # addresses with a token bucket; beyond, the oldest are dropped


class ClientLimits:
    """Decides whether a client may connect or make a request now."""

    __slots__ = (
        "_buckets",
        "_burst",
        "_connections",
        "_logged",
        "_max_connections",
        "_rate",
        "active",
    )

    def __init__(self, config: Config) -> None:
        self._max_connections = config.max_client_connections
        self._rate = float(config.rate_limit)
        self._burst = float(config.rate_limit_burst)
        self._connections: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # addr -> (tokens, last refill)
        self._logged: dict[tuple[str, str], float] = {}
        self.active = bool(self._max_connections or self._rate)

    def connection_opened(self, addr: str) -> bool:
        """Count a connection; False when the address already holds its maximum."""
        if not self._max_connections:
            return True
        count = self._connections.get(addr, 0)
        if count >= self._max_connections:
            self._log_once(addr, "connections", "--max-client-connections reached")
            return False
        self._connections[addr] = count + 1
        return True

    def connection_closed(self, addr: str) -> None:
        count = self._connections.get(addr, 0) - 1
        if count > 0:
            self._connections[addr] = count
        else:
            self._connections.pop(addr, None)

    def retry_after(self, addr: str) -> float:
        """0 when the request may proceed; else the seconds until a token is free."""
        rate = self._rate
        if not rate:
            return 0.0
        now = monotonic()
        tokens, last = self._buckets.get(addr, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[addr] = (tokens - 1.0, now)
            return 0.0
        self._buckets[addr] = (tokens, now)
        self._log_once(addr, "rate", "--rate-limit exceeded")
        return (1.0 - tokens) / rate

    def prune(self) -> None:
        """Forget full buckets and old log marks (called from the worker's sweep)."""
        now = monotonic()
        if self._rate:
            refill = self._burst / self._rate
            stale = [a for a, (_, last) in self._buckets.items() if now - last >= refill]
            for addr in stale:
                del self._buckets[addr]
            while len(self._buckets) > _MAX_TRACKED:
                del self._buckets[next(iter(self._buckets))]
        for key in [k for k, t in self._logged.items() if now - t >= _LOG_EVERY_S]:
            del self._logged[key]

    def _log_once(self, addr: str, kind: str, message: str) -> None:
        key = (addr, kind)
        if key not in self._logged:
            self._logged[key] = monotonic()
            error_log.warning("%s for client %s (logged once per %gs)", message, addr, _LOG_EVERY_S)
