"""Opening hours and closed dates, in the site's own time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from central.domain import OpeningHours, SiteRules, service_day
from central.domain.errors import NextupError, SiteClosed

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)

# A branch open 9-12 and 13-17 on weekdays, 10-13 on Saturday, closed on Sunday.
BRANCH = OpeningHours(
    weekly={
        **{d: ((time(9), time(12)), (time(13), time(17))) for d in (MON, TUE, WED, THU, FRI)},
        SAT: ((time(10), time(13)),),
    },
    closed_dates=frozenset({date(2025, 3, 5)}),  # a Wednesday holiday
)


def every_monday_for_a_year_from(monday: date) -> frozenset[date]:
    return frozenset(monday + timedelta(weeks=n) for n in range(60))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (berlin(2025, 3, 3, 8, 59), False),
        (berlin(2025, 3, 3, 9, 0), True),
        (berlin(2025, 3, 3, 11, 59), True),
        (berlin(2025, 3, 3, 12, 0), False),
        (berlin(2025, 3, 3, 12, 30), False),
        (berlin(2025, 3, 3, 13, 0), True),
        (berlin(2025, 3, 3, 16, 59, 59), True),
        (berlin(2025, 3, 3, 17, 0), False),
        (berlin(2025, 3, 8, 12, 0), True),  # Saturday
        (berlin(2025, 3, 8, 14, 0), False),
        (berlin(2025, 3, 9, 11, 0), False),  # Sunday
    ],
)
def test_a_site_is_open_inside_its_intervals_only(moment, open_):
    assert BRANCH.is_open(moment, BERLIN) is open_


def test_a_closed_date_is_closed_all_day():
    assert not BRANCH.is_open(berlin(2025, 3, 5, 10, 0), BERLIN)
    assert BRANCH.is_open(berlin(2025, 3, 12, 10, 0), BERLIN), "the next Wednesday is a normal day"


def test_hours_are_read_in_the_sites_time_zone_not_utc():
    # 08:30 UTC is 09:30 in Berlin (open) but 03:30 in New York (closed).
    moment = datetime(2025, 3, 3, 8, 30, tzinfo=UTC)
    assert BRANCH.is_open(moment, BERLIN)
    assert not BRANCH.is_open(moment, NEW_YORK)
    assert not BRANCH.is_open(datetime(2025, 3, 3, 7, 30, tzinfo=UTC), BERLIN)


def test_opening_follows_the_local_clock_across_a_dst_change():
    every_day = OpeningHours(weekly={d: ((time(9), time(17)),) for d in range(7)})
    # Berlin springs forward on Sunday 30 March 2025: 09:00 is 08:00 UTC the day before, 07:00 UTC that day.
    assert not every_day.is_open(datetime(2025, 3, 29, 7, 30, tzinfo=UTC), BERLIN)
    assert every_day.is_open(datetime(2025, 3, 30, 7, 30, tzinfo=UTC), BERLIN)
    opens = every_day.next_opening(berlin(2025, 3, 29, 18, 0), BERLIN)
    assert opens == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)
    assert opens.astimezone(BERLIN).hour == 9
    closes = every_day.closing_at(datetime(2025, 3, 30, 12, 0, tzinfo=UTC), BERLIN)
    assert closes == datetime(2025, 3, 30, 15, 0, tzinfo=UTC)


def test_opening_follows_the_local_clock_when_dst_ends():
    every_day = OpeningHours(weekly={d: ((time(9), time(17)),) for d in range(7)})
    # Berlin falls back on Sunday 26 October 2025: 09:00 is 08:00 UTC that day.
    assert every_day.next_opening(berlin(2025, 10, 25, 18, 0), BERLIN) == datetime(
        2025, 10, 26, 8, 0, tzinfo=UTC
    )


def test_next_opening_is_the_next_interval_start_the_same_day():
    assert BRANCH.next_opening(berlin(2025, 3, 3, 12, 15), BERLIN) == berlin(2025, 3, 3, 13, 0)
    assert BRANCH.next_opening(berlin(2025, 3, 3, 7, 0), BERLIN) == berlin(2025, 3, 3, 9, 0)


def test_next_opening_after_closing_time_is_the_next_day():
    assert BRANCH.next_opening(berlin(2025, 3, 3, 17, 0), BERLIN) == berlin(2025, 3, 4, 9, 0)


def test_next_opening_skips_closed_dates_and_closed_weekdays():
    assert BRANCH.next_opening(berlin(2025, 3, 4, 18, 0), BERLIN) == berlin(2025, 3, 6, 9, 0)
    assert BRANCH.next_opening(berlin(2025, 3, 8, 14, 0), BERLIN) == berlin(2025, 3, 10, 9, 0)


def test_next_opening_of_a_site_that_never_opens_again_is_none():
    only_one_monday = OpeningHours(
        weekly={MON: ((time(9), time(10)),)},
        closed_dates=every_monday_for_a_year_from(date(2025, 3, 10)),
    )
    assert only_one_monday.next_opening(berlin(2025, 3, 3, 11, 0), BERLIN) is None


def test_closing_at_is_the_end_of_the_current_interval():
    assert BRANCH.closing_at(berlin(2025, 3, 3, 10, 0), BERLIN) == berlin(2025, 3, 3, 12, 0)
    assert BRANCH.closing_at(berlin(2025, 3, 3, 14, 0), BERLIN) == berlin(2025, 3, 3, 17, 0)


def test_closing_at_is_none_while_closed():
    assert BRANCH.closing_at(berlin(2025, 3, 3, 12, 30), BERLIN) is None
    assert BRANCH.closing_at(berlin(2025, 3, 5, 10, 0), BERLIN) is None


def test_touching_intervals_are_one_opening():
    split_day = OpeningHours(weekly={MON: ((time(12), time(17)), (time(9), time(12)))})
    assert split_day.is_open(berlin(2025, 3, 3, 12, 0), BERLIN)
    assert split_day.closing_at(berlin(2025, 3, 3, 10, 0), BERLIN) == berlin(2025, 3, 3, 17, 0)
    assert split_day.next_opening(berlin(2025, 3, 3, 10, 0), BERLIN) == berlin(2025, 3, 10, 9, 0)


def test_with_no_hours_a_site_is_always_open():
    always = OpeningHours()
    assert always.always_open
    assert always.is_open(berlin(2025, 3, 9, 3, 0), BERLIN)
    assert always.closing_at(berlin(2025, 3, 9, 3, 0), BERLIN) is None
    assert always.next_opening(berlin(2025, 3, 9, 3, 0), BERLIN) is None
    assert OpeningHours(weekly={MON: ()}).always_open


def test_a_site_open_all_day_still_closes_on_its_closed_dates():
    holidays = OpeningHours(closed_dates=frozenset({date(2025, 12, 25), date(2025, 12, 26)}))
    assert holidays.is_open(berlin(2025, 12, 24, 23, 59), BERLIN)
    assert not holidays.is_open(berlin(2025, 12, 25, 0, 0), BERLIN)
    assert not holidays.is_open(berlin(2025, 12, 26, 12, 0), BERLIN)
    assert holidays.next_opening(berlin(2025, 12, 25, 12, 0), BERLIN) == berlin(2025, 12, 27, 0, 0)


def test_a_naive_time_is_taken_as_utc_not_as_the_machines_local_time():
    # 08:30 UTC is 09:30 in Berlin.
    assert BRANCH.is_open(datetime(2025, 3, 3, 8, 30), BERLIN)
    assert not BRANCH.is_open(datetime(2025, 3, 3, 7, 30), BERLIN)
    assert service_day(datetime(2025, 3, 3, 23, 30), BERLIN) == date(2025, 3, 4)


def test_an_interval_must_end_after_it_starts():
    with pytest.raises(ValueError, match="tue: 17:00 is not before 09:00"):
        OpeningHours(weekly={TUE: ((time(17), time(9)),)})
    with pytest.raises(ValueError, match="not before"):
        OpeningHours(weekly={TUE: ((time(9), time(9)),)})


def test_a_weekday_must_be_monday_to_sunday():
    with pytest.raises(ValueError, match="weekday 7"):
        OpeningHours(weekly={7: ((time(9), time(17)),)})


# --- the service day -------------------------------------------------------------


def test_the_service_day_turns_at_local_midnight_not_utc_midnight():
    # 23:30 UTC on 3 March is already 00:30 on 4 March in Berlin.
    assert service_day(datetime(2025, 3, 3, 22, 59, tzinfo=UTC), BERLIN) == date(2025, 3, 3)
    assert service_day(datetime(2025, 3, 3, 23, 0, tzinfo=UTC), BERLIN) == date(2025, 3, 4)
    # And in New York it is still the 3rd until 05:00 UTC on the 4th.
    assert service_day(datetime(2025, 3, 4, 4, 59, tzinfo=UTC), NEW_YORK) == date(2025, 3, 3)
    assert service_day(datetime(2025, 3, 4, 5, 0, tzinfo=UTC), NEW_YORK) == date(2025, 3, 4)


# --- site rules --------------------------------------------------------------------


def test_check_open_lets_an_open_site_through():
    SiteRules(name="Main branch", tz=BERLIN, hours=BRANCH).check_open(berlin(2025, 3, 3, 10, 0))


def test_a_closed_site_says_when_it_opens():
    site = SiteRules(name="Main branch", tz=BERLIN, hours=BRANCH)
    with pytest.raises(SiteClosed) as caught:
        site.check_open(datetime(2025, 3, 4, 17, 30, tzinfo=UTC))  # Tuesday 18:30 in Berlin
    error = caught.value
    assert error.message == "Main branch is closed, opens Thursday 06 March at 09:00"
    assert error.opens_at == berlin(2025, 3, 6, 9, 0)
    assert error.code == "closed"
    assert isinstance(error, NextupError) and isinstance(error, RuntimeError)


def test_a_site_that_never_opens_again_says_so():
    never = OpeningHours(
        weekly={MON: ((time(9), time(10)),)}, closed_dates=every_monday_for_a_year_from(date(2025, 3, 3))
    )
    with pytest.raises(SiteClosed, match="Main branch is closed, opens a date not yet set") as caught:
        SiteRules(name="Main branch", tz=BERLIN, hours=never).check_open(berlin(2025, 3, 3, 9, 30))
    assert caught.value.opens_at is None
