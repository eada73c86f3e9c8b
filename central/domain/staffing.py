"""How many points a service needs: Erlang C (the M/M/c queue).

Clients arrive at random (Poisson, ``arrival_per_s``), each takes an
exponentially distributed time at the point (mean ``service_s``), and ``c``
points serve one queue first come first served.  The offered load
``a = arrival_per_s * service_s`` is in Erlangs: how many points would be busy
all the time.  With ``a >= c`` the queue grows without end: no waiting target
holds, and every function here says so instead of returning a number that
looks usable.

Plain functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Far above any service hall; only stops a loop fed absurd numbers.
MAX_POINTS = 10_000


def _check_load(c: int, a: float) -> None:
    if c < 1:
        raise ValueError(f"the number of points must be at least 1, not {c}")
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"the offered load must be a finite number >= 0, not {a}")


def is_stable(c: int, a: float) -> bool:
    """Whether ``c`` points keep up with a load of ``a`` Erlangs (the queue stays finite)."""
    _check_load(c, a)
    return a < c


def erlang_c(c: int, a: float) -> float:
    """The probability that a client has to wait at all, with ``c`` points and a load of ``a`` Erlangs.

    1.0 when the load is unstable (``a >= c``): everyone waits, and ever longer.
    """
    _check_load(c, a)
    if a >= c:
        return 1.0
    if a == 0:
        return 0.0
    # Erlang B by its recurrence, then C from B: no factorials, so no overflow for large c.
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def _check_rates(arrival_per_s: float, service_s: float) -> None:
    if not math.isfinite(arrival_per_s) or arrival_per_s < 0:
        raise ValueError(f"the arrival rate must be a finite number >= 0, not {arrival_per_s}")
    if not math.isfinite(service_s) or service_s <= 0:
        raise ValueError(f"the service time must be a finite number > 0, not {service_s}")


def wait_exceeds(c: int, arrival_per_s: float, service_s: float, target_s: float) -> float:
    """P(W > target_s): the probability that a client waits longer than ``target_s`` seconds.

    P(W > t) = C(c, a) * exp(-(c*mu - lambda) * t) with mu = 1 / service_s; 1.0 when unstable.
    """
    _check_rates(arrival_per_s, service_s)
    if not math.isfinite(target_s) or target_s < 0:
        raise ValueError(f"the target wait must be a finite number >= 0, not {target_s}")
    a = arrival_per_s * service_s
    if a >= c:
        _check_load(c, a)
        return 1.0
    return erlang_c(c, a) * math.exp(-(c / service_s - arrival_per_s) * target_s)


def mean_wait_s(c: int, arrival_per_s: float, service_s: float) -> float:
    """The mean wait in the queue, C(c, a) / (c*mu - lambda); infinite when unstable."""
    _check_rates(arrival_per_s, service_s)
    a = arrival_per_s * service_s
    if a >= c:
        _check_load(c, a)
        return math.inf
    return erlang_c(c, a) / (c / service_s - arrival_per_s)


@dataclass(frozen=True)
class Staffing:
    """What Erlang C advises for one service."""

    arrival_per_s: float
    service_s: float
    target_s: float
    share: float
    """The wanted share of clients served within ``target_s`` (0.9 for 90 %)."""
    points: int
    """The fewest points that reach the share (0 when nobody arrives)."""
    within_target: float
    """The share of clients served within ``target_s`` with ``points``."""

    @property
    def load(self) -> float:
        """The offered load in Erlangs (how many points are busy on average)."""
        return self.arrival_per_s * self.service_s


def required_points(arrival_per_s: float, service_s: float, target_s: float, share: float) -> Staffing:
    """The fewest points that keep at least ``share`` of the waits at or under ``target_s`` seconds.

    ``share`` is a fraction strictly between 0 and 1: under Erlang C some client always
    risks a wait, so 100 % is never reached.
    """
    _check_rates(arrival_per_s, service_s)
    if not math.isfinite(target_s) or target_s < 0:
        raise ValueError(f"the target wait must be a finite number >= 0, not {target_s}")
    if not 0 < share < 1:
        raise ValueError(f"the share of waits within the target must be between 0 and 1, not {share}")
    if arrival_per_s == 0:
        return Staffing(arrival_per_s, service_s, target_s, share, 0, 1.0)
    a = arrival_per_s * service_s
    c = max(1, math.floor(a) + 1)  # the fewest points that keep up at all
    while c <= MAX_POINTS:
        within = 1.0 - wait_exceeds(c, arrival_per_s, service_s, target_s)
        if within >= share:
            return Staffing(arrival_per_s, service_s, target_s, share, c, within)
        c += 1
    raise ValueError(f"a load of {a:.1f} Erlangs needs more than {MAX_POINTS} points")
