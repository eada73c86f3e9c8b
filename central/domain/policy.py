"""Which waiting ticket is called next: the priority policies.

- strict: a higher class always goes first;
- aging: every ``aging_after_s`` of waiting lifts a ticket one class, so
  nobody waits forever behind a stream of higher-class tickets;
- ratio: classes take turns in a cycle, e.g. 3 paid then 1 free.

Within a class, first come first served.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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
        return self._ratio_rank_of(ticket.priority_rank)

    def _ratio_turn(self, ranks: list[int], state: RatioState) -> tuple[int, RatioState]:
        counts = list(state[: len(self.ratio)]) + [0] * (len(self.ratio) - len(state))
        turn = next((r for r in ranks if counts[r] < self.ratio[r]), None)
        if turn is None:
            # Every class with someone waiting has had its share: a new cycle.
            counts = [0] * len(self.ratio)
            turn = ranks[0]
        counts[turn] += 1
        return turn, tuple(counts)

    @property
    def orders_by_time(self) -> bool:
        """Whether who goes before a new ticket depends only on class and issue time (not ratio turns)."""
        return self.kind is not PolicyKind.RATIO

    def called_before_new(self, new_rank: int, rank: int, now: datetime) -> datetime | None:
        """Waiting tickets of class ``rank`` issued at or before the returned time would be called
        before a ticket of class ``new_rank`` issued ``now``; None: none of that class would.

        Lets the store count the people ahead of a new ticket without reading the queue.
        Only for policies that ``orders_by_time``.
        """
        if not self.orders_by_time:
            raise ValueError("the ratio policy orders by turns, not by time")
        if rank <= new_rank:
            return now  # everyone already waiting in a class as high or higher
        if self.kind is PolicyKind.STRICT:
            return None
        # Aging: a lower class has caught up once it waited (rank - new_rank) steps.
        return now - timedelta(seconds=(rank - new_rank) * self.aging_after_s)

    def ratio_place_of_new(self, waiting_by_class: Mapping[int, int], new_rank: int) -> int:
        """How many of the waiting (a count per class) the ratio policy calls before one more
        ticket of class ``new_rank``, with the cycle starting afresh as ``call_order`` does.

        Counts instead of tickets, and whole cycles at a time: a long queue costs nothing.
        """
        left: dict[int, int] = {}
        for rank, count in waiting_by_class.items():
            if count > 0:
                key = self._ratio_rank_of(rank)
                left[key] = left.get(key, 0) + count
        mine = self._ratio_rank_of(new_rank)
        left[mine] = left.get(mine, 0) + 1  # the new ticket, last of its class
        ahead = 0
        while True:
            classes = sorted(r for r, n in left.items() if n > 0)
            # Cycles in which every class gives its whole share and the new ticket is not reached.
            cycles = min(min(left[r] // self.ratio[r] for r in classes), (left[mine] - 1) // self.ratio[mine])
            if cycles:
                for r in classes:
                    left[r] -= cycles * self.ratio[r]
                    ahead += cycles * self.ratio[r]
                continue
            for r in classes:  # one cycle, in which some class runs out or the new ticket is called
                take = min(self.ratio[r], left[r])
                if r == mine and take == left[r]:
                    return ahead + take - 1
                left[r] -= take
                ahead += take

    def _ratio_rank_of(self, rank: int) -> int:
        return min(rank, len(self.ratio) - 1)

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
