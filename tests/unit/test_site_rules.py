"""What a site allows: which priority class a channel may take, and issuing a ticket."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from central.domain import Channel, OpeningHours, PriorityClass, Service, SiteRules, new_ticket
from central.domain.errors import (
    NextupError,
    PriorityNotAllowed,
    ServiceInactive,
    SiteClosed,
    UnknownPriority,
    UnknownService,
)
from central.domain.queue import STANDARD

BERLIN = ZoneInfo("Europe/Berlin")
PAID = PriorityClass(key="paid", name="Paid", rank=0, public=False)
FREE = PriorityClass(key="free", name="Free", rank=1, public=True)
ELDERLY = PriorityClass(key="elderly", name="Elderly", rank=0, public=True)
CASH = Service(key="cash", name="Cash desk", prefix="A")
CLOSED_DESK = Service(key="safe", name="Safe deposit", prefix="S", active=False)
NOON = datetime(2025, 3, 3, 11, 0, tzinfo=UTC)  # Monday noon in Berlin


ALWAYS = OpeningHours()


def site(priorities=(FREE, PAID), hours=ALWAYS) -> SiteRules:
    return SiteRules(
        name="Main branch",
        tz=BERLIN,
        services={"cash": CASH, "safe": CLOSED_DESK},
        priorities=tuple(priorities),
        hours=hours,
        language="de",
    )


@pytest.mark.parametrize("channel", [Channel.WEB, Channel.API])
def test_a_public_channel_cannot_take_a_class_that_is_not_public(channel):
    with pytest.raises(PriorityNotAllowed, match="'Paid' is not given out here") as caught:
        site().priority("paid", channel)
    assert caught.value.code == "priority_not_allowed"
    assert isinstance(caught.value, PermissionError)


@pytest.mark.parametrize("channel", [Channel.WEB, Channel.API, Channel.KIOSK])
def test_every_channel_may_take_a_public_class(channel):
    assert site().priority("free", channel) == FREE


def test_the_kiosk_may_give_out_a_class_that_is_not_public():
    assert site().priority("paid", Channel.KIOSK) == PAID


def test_a_channel_named_by_a_plain_string_gets_that_channels_rights():
    assert site().priority("paid", "kiosk") == PAID
    with pytest.raises(PriorityNotAllowed):
        site().priority("paid", "web")


def test_an_unknown_class_is_reported_as_unknown():
    with pytest.raises(UnknownPriority, match="There is no priority class 'vip'") as caught:
        site().priority("vip", Channel.KIOSK)
    assert isinstance(caught.value, LookupError) and isinstance(caught.value, NextupError)


@pytest.mark.parametrize("channel", [Channel.WEB, Channel.API, Channel.KIOSK])
def test_without_a_class_a_ticket_gets_the_lowest_class_the_channel_may_take(channel):
    assert site().priority(None, channel) == FREE


def test_the_default_is_the_lowest_class_the_channel_may_take_not_the_lowest_of_all():
    staff_only_lowest = PriorityClass(key="internal", name="Internal", rank=5, public=False)
    rules = site(priorities=(ELDERLY, FREE, staff_only_lowest))
    assert rules.priority(None, Channel.KIOSK) == staff_only_lowest
    assert rules.priority(None, Channel.WEB) == FREE


def test_a_public_channel_with_no_public_class_gets_a_clear_refusal():
    with pytest.raises(PriorityNotAllowed, match="No priority class"):
        site(priorities=(PAID,)).priority(None, Channel.WEB)


def test_a_site_with_no_classes_gives_everyone_standard():
    rules = site(priorities=())
    assert rules.classes == (STANDARD,)
    for channel in Channel:
        assert rules.priority(None, channel) == STANDARD
        assert rules.priority("standard", channel) == STANDARD


def test_classes_are_ordered_highest_first_whatever_order_they_were_given_in():
    assert [p.key for p in site(priorities=(FREE, PAID)).classes] == ["paid", "free"]


def test_an_unknown_service_is_reported_as_unknown():
    with pytest.raises(UnknownService, match="There is no service 'loans'"):
        site().check_can_issue("loans", None, Channel.KIOSK, NOON)


def test_an_inactive_service_takes_no_tickets():
    with pytest.raises(ServiceInactive, match="Safe deposit is not taking tickets now"):
        site().check_can_issue("safe", None, Channel.KIOSK, NOON)


def test_a_closed_site_takes_no_tickets():
    mornings = OpeningHours(weekly={0: ((time(8), time(9)),)})
    with pytest.raises(SiteClosed, match="Main branch is closed, opens Monday 10 March at 08:00"):
        site(hours=mornings).check_can_issue("cash", None, Channel.KIOSK, NOON)


def test_an_open_site_gives_the_service_and_class_of_a_new_ticket():
    assert site().check_can_issue("cash", "paid", Channel.KIOSK, NOON) == (CASH, PAID)
    assert site().check_can_issue("cash", None, Channel.WEB, NOON) == (CASH, FREE)


def test_a_new_ticket_is_waiting_with_its_number_class_and_the_sites_language():
    ticket = new_ticket(site(), CASH, PAID, seq=42, now=NOON, channel=Channel.KIOSK, token="tok")
    assert ticket.number == "A-042"
    assert (ticket.service, ticket.priority, ticket.priority_rank) == ("cash", "paid", 0)
    assert ticket.state == "waiting" and ticket.point is None and ticket.calls == 0
    assert ticket.issued_at == NOON
    assert ticket.language == "de"
    assert (
        new_ticket(
            site(), CASH, PAID, seq=1, now=NOON, channel=Channel.WEB, token="t", language="en"
        ).language
        == "en"
    )


def test_a_new_ticket_is_numbered_in_the_sites_local_day():
    late = datetime(2025, 3, 3, 23, 30, tzinfo=UTC)  # 00:30 on the 4th in Berlin
    assert new_ticket(site(), CASH, FREE, seq=1, now=late, channel=Channel.WEB, token="t").day == date(
        2025, 3, 4
    )
