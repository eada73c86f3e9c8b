"""Which waiting ticket is called next: the priority policies.

- strict: a higher class always goes first;
- aging: every ``aging_after_s`` of waiting lifts a ticket one class, so
  nobody waits forever behind a stream of higher-class tickets;
- ratio: classes take turns in a cycle, e.g. 3 paid then 1 free.

Within a class, first come first served.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeVar

from .errors import NothingWaiting


class Queued(Protocol):
    """What the policies look at: a ticket, or any light record of one."""

    @property
    def priority_rank(self) -> int: ...
    @property
    def issued_at(self) -> datetime: ...
    @property
    def seq(self) -> int: ...
    @property
    def number(self) -> str: ...


Ticket = TypeVar("Ticket", bound=Queued)


class PolicyKind(StrEnum):
    STRICT = "strict"
    AGING = "aging"
    RATIO = "ratio"


RatioState = tuple[int, ...]
"""Calls per class in the current ratio cycle, by rank."""


@dataclass(frozen=True)
class PriorityPolicy:
    kind: PolicyKind = PolicyKind.STRICT
    aging_after_s: int = 600
    ratio: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # "ratio" from a site file must not silently behave as strict.
        object.__setattr__(self, "kind", PolicyKind(self.kind))
        object.__setattr__(self, "ratio", tuple(self.ratio))
        if self.aging_after_s <= 0:
            raise ValueError("aging_after_s must be positive")
        if self.kind is PolicyKind.RATIO and (not self.ratio or any(r <= 0 for r in self.ratio)):
            raise ValueError("a ratio policy needs a positive share for every priority class")

    def effective_rank(self, ticket: Queued, now: datetime) -> int:
        if self.kind is not PolicyKind.AGING:
            return ticket.priority_rank
        waited = max(0.0, (now - ticket.issued_at).total_seconds())
        return max(0, ticket.priority_rank - int(waited // self.aging_after_s))

    def pick(
        self, candidates: Sequence[Ticket], now: datetime, state: RatioState = ()
    ) -> tuple[Ticket, RatioState]:
        """The ticket to call among ``candidates``, and the ratio state after."""
        if not candidates:
            raise NothingWaiting("No ticket is waiting")
        if self.kind is not PolicyKind.RATIO:
            return min(candidates, key=lambda t: (self.effective_rank(t, now), _fifo(t))), state
        return self._pick_by_ratio(candidates, state)

    def _pick_by_ratio(self, candidates: Sequence[Ticket], state: RatioState) -> tuple[Ticket, RatioState]:
        heads: dict[int, Ticket] = {}
        for ticket in candidates:
            rank = self._ratio_rank(ticket)
            if rank not in heads or _fifo(ticket) < _fifo(heads[rank]):
                heads[rank] = ticket
        turn, state = self._ratio_turn(sorted(heads), state)
        return heads[turn], state

    def _ratio_rank(self, ticket: Queued) -> int:
        return min(ticket.priority_rank, len(self.ratio) - 1)

    def _ratio_turn(self, ranks: list[int], state: RatioState) -> tuple[int, RatioState]:
        counts = list(state[: len(self.ratio)]) + [0] * (len(self.ratio) - len(state))
        turn = next((r for r in ranks if counts[r] < self.ratio[r]), None)
        if turn is None:
            # Every class with someone waiting has had its share: a new cycle.
            counts = [0] * len(self.ratio)
            turn = ranks[0]
        counts[turn] += 1
        return turn, tuple(counts)

    def call_order(self, waiting: Sequence[Ticket], now: datetime, state: RatioState = ()) -> list[Ticket]:
        """The order in which ``waiting`` would be called if nobody else arrived."""
        if self.kind is not PolicyKind.RATIO:
            return sorted(waiting, key=lambda t: (self.effective_rank(t, now), _fifo(t)))
        queues: dict[int, deque[Ticket]] = {}
        for ticket in sorted(waiting, key=_fifo):
            queues.setdefault(self._ratio_rank(ticket), deque()).append(ticket)
        order: list[Ticket] = []
        while queues:
            turn, state = self._ratio_turn(sorted(queues), state)
            order.append(queues[turn].popleft())
            if not queues[turn]:
                del queues[turn]
        return order


def _fifo(ticket: Queued) -> tuple[datetime, int, str]:
    return (ticket.issued_at, ticket.seq, ticket.number)
