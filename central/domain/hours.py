"""Opening hours and closed dates, in the site's time zone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

Interval = tuple[time, time]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class OpeningHours:
    """Intervals per weekday (0 = Monday) and closed dates.

    With no intervals at all the site is open all day, except on closed dates.
    A naive datetime is taken as UTC (as SQLite hands them back), never as the
    local time of whatever machine runs the code.
    """

    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=dict)
    closed_dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        for day, intervals in self.weekly.items():
            if day not in range(7):
                raise ValueError(f"weekday {day} is not 0 (Monday) to 6 (Sunday)")
            for start, end in intervals:
                if start >= end:
                    raise ValueError(f"{WEEKDAYS[day]}: {start:%H:%M} is not before {end:%H:%M}")

    @property
    def always_open(self) -> bool:
        return not any(self.weekly.values())

    def _intervals_on(self, day: date) -> tuple[Interval, ...]:
        if day in self.closed_dates:
            return ()
        # Touching or overlapping intervals are one opening: 9-12 and 12-17 close at 17, not at 12.
        merged: list[Interval] = []
        for start, end in sorted(self.weekly.get(day.weekday(), ())):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return tuple(merged)

    def is_open(self, now: datetime, tz: tzinfo) -> bool:
        local = _local(now, tz)
        if local.date() in self.closed_dates:
            return False
        if self.always_open:
            return True
        moment = local.time()
        return any(start <= moment < end for start, end in self._intervals_on(local.date()))

    def next_opening(self, now: datetime, tz: tzinfo) -> datetime | None:
        """When the site next opens after ``now`` (None if it never does)."""
        local = _local(now, tz)
        if self.always_open:
            # Open all day: it opens at the midnight that ends a closed date.
            for offset in range(1, 370):
                day = local.date() + timedelta(days=offset)
                if day not in self.closed_dates and day - timedelta(days=1) in self.closed_dates:
                    return datetime.combine(day, time(), tz)
            return None
        for offset in range(0, 370):
            day = local.date() + timedelta(days=offset)
            for start, _end in self._intervals_on(day):
                opening = datetime.combine(day, start, tz)
                if opening > local:
                    return opening
        return None

    def closing_at(self, now: datetime, tz: tzinfo) -> datetime | None:
        """When the interval ``now`` falls in ends (None when closed or always open)."""
        local = _local(now, tz)
        for start, end in self._intervals_on(local.date()):
            if start <= local.time() < end:
                return datetime.combine(local.date(), end, tz)
        return None


def service_day(now: datetime, tz: tzinfo) -> date:
    """The day a ticket is numbered in: the site's local date."""
    return _local(now, tz).date()


def _local(now: datetime, tz: tzinfo) -> datetime:
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(tz)
