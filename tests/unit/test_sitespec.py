"""The site file: read into plain values, or every mistake reported with its line and reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import pytest

from central.domain import NextupError, PolicyKind
from central.domain.errors import InvalidSiteFile
from central.sitespec import KioskButton, parse_site_file, parse_site_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEAD = """\
[site]
name = "Test branch"

[[priority]]
key = "paid"
name = "Paid"

[[priority]]
key = "free"
name = "Free"

[[service]]
key = "cash"
name = "Cash desk"
prefix = "A"

[[point]]
serial = 1
name = "Window 1"
services = ["cash"]
"""


def site(text: str) -> str:
    return dedent(text)


def problems(text: str) -> list[tuple[int, str]]:
    """Each reported problem as (line, reason), in the order reported."""
    with pytest.raises(InvalidSiteFile) as caught:
        parse_site_text(text, source="site.toml")
    found = []
    for entry in str(caught.value).splitlines():
        name, line, reason = entry.split(":", 2)
        assert name == "site.toml"
        found.append((int(line), reason.strip()))
    return found


def marked(text: str, mark: str = "# <-") -> list[int]:
    """The lines carrying ``mark``: where the test expects a problem."""
    return [n for n, line in enumerate(text.split("\n"), 1) if mark in line]


def only_problem(text: str) -> tuple[int, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- good files -------------------------------------------------------------------------------


def test_the_example_site_file_parses():
    spec = parse_site_file(EXAMPLES / "site.toml")

    assert spec.name == "Main branch"
    assert spec.timezone == "Europe/Berlin"
    assert spec.policy == "aging" and spec.aging_after_s == 600
    assert [(p.key, p.rank, p.public) for p in spec.priorities] == [("paid", 0, False), ("free", 1, True)]
    assert [s.prefix for s in spec.services] == ["A", "B", "C"]
    assert spec.hours[0] == ((time(9), time(13)), (time(14), time(18)))
    assert spec.hours[6] == ()
    assert date(2026, 12, 25) in spec.closed_dates and spec.hours_declared
    kiosk = next(d for d in spec.devices if d.id == "kiosk-2")
    assert kiosk.language == "de"
    assert kiosk.buttons == {
        "cash": KioskButton("cash"),
        "cash-paid": KioskButton("cash", "paid"),
        "loans": KioskButton("loans"),
    }
    assert {u.name: u.points for u in spec.users} == {"admin": (), "anna": (1, 2), "ben": (2, 3)}


def test_the_demo_site_has_three_services_two_classes_four_points_and_its_devices():
    spec = parse_site_file(EXAMPLES / "demo-site.toml")

    assert [s.key for s in spec.services] == ["cash", "loans", "accounts"]
    assert [p.key for p in spec.priorities] == ["paid", "free"]
    assert [p.serial for p in spec.points] == [1, 2, 3, 4]
    kinds = [d.kind for d in spec.devices]
    assert kinds.count("kiosk") == 1 and kinds.count("display") == 1
    assert sorted(d.point for d in spec.devices if d.kind == "point") == [1, 2, 3, 4]
    assert not spec.hours_declared and spec.opening_hours.always_open
    assert spec.priority_policy.kind is PolicyKind.RATIO and spec.ratio == (3, 1)


def test_a_minimal_site_gets_the_defaults():
    spec = parse_site_text('[site]\nname = "Tiny"\n')

    assert (spec.timezone, spec.language, spec.policy, spec.aging_after_s) == ("UTC", "en", "strict", 600)
    assert spec.ratio == () and spec.priorities == () and spec.services == () and spec.devices == ()
    assert spec.hours == {} and spec.closed_dates == frozenset() and not spec.hours_declared


def test_service_and_point_defaults():
    spec = parse_site_text(HEAD + '\n[[point]]\nserial = 2\nname = "Window 2"\n')

    assert spec.services[0].description == "" and spec.services[0].active
    assert spec.points[1].services == () and spec.points[1].active


def test_priority_rank_is_the_order_in_the_file():
    spec = parse_site_text(HEAD)

    assert [(p.key, p.rank) for p in spec.priorities] == [("paid", 0), ("free", 1)]


def test_hours_become_the_opening_hours_of_the_domain():
    spec = parse_site_text(
        site(
            """\
            [site]
            name = "Open some hours"
            timezone = "Europe/Berlin"

            [hours]
            mon = ["14:00-18:00", "09:00-13:00"]
            closed = [2026-12-28, "2027-01-01"]
            """
        )
    )
    tz = ZoneInfo(spec.timezone)
    hours = spec.opening_hours

    assert spec.hours == {0: ((time(9), time(13)), (time(14), time(18)))}
    assert spec.closed_dates == {date(2026, 12, 28), date(2027, 1, 1)}
    assert hours.is_open(datetime(2026, 12, 21, 9, 30, tzinfo=tz), tz)
    assert not hours.is_open(datetime(2026, 12, 21, 13, 30, tzinfo=tz), tz)
    assert not hours.is_open(datetime(2026, 12, 28, 9, 30, tzinfo=tz), tz)
    assert not hours.is_open(datetime(2026, 12, 22, 10, 0, tzinfo=UTC), tz)


def test_touching_intervals_do_not_overlap():
    spec = parse_site_text('[site]\nname = "x"\n[hours]\nfri = ["09:00-12:00", "12:00-15:00"]\n')

    assert spec.hours[4] == ((time(9), time(12)), (time(12), time(15)))


# --- every mistake named by line and reason ----------------------------------------------------


def test_an_invalid_site_file_is_a_nextup_error_and_a_value_error():
    with pytest.raises(InvalidSiteFile) as caught:
        parse_site_text("[site]\n")

    assert isinstance(caught.value, NextupError) and isinstance(caught.value, ValueError)
    assert caught.value.code == "invalid_site_file"


UNKNOWN_KEYS = {
    "site": '[site]\nname = "x"\ntimezon = "UTC" # <-\n',
    "service": HEAD + '\n[[service]]\nkey = "loans"\nname = "Loans"\nprefix = "B"\ndescriptoin = "" # <-\n',
    "point": HEAD + '\n[[point]]\nserial = 2\nname = "W2"\nservice = ["cash"] # <-\n',
    "device": HEAD + '\n[[device]]\nid = "d-1"\nkind = "display"\nlanguge = "de" # <-\n',
    "user": HEAD + '\n[[user]]\nname = "anna"\nrole = "admin"\npoint = [1] # <-\n',
}


@pytest.mark.parametrize("table", UNKNOWN_KEYS)
def test_an_unknown_key_is_a_typo_and_named(table):
    text = UNKNOWN_KEYS[table]

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert "unknown key" in reason and "did you mean" in reason


def test_an_unknown_table_is_named():
    text = HEAD + "\n[[servce]] # <-\nkey = 1\n"

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert reason == 'unknown table or key "servce" (did you mean "service"?)'


def test_a_single_table_where_an_array_is_meant_is_explained():
    text = '[site]\nname = "x"\n[priority] # <-\nkey = "paid"\nname = "Paid"\n'

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert "write [[priority]]" in reason


def test_wrong_types_are_named_with_the_value_found():
    text = site(
        """\
        [site]
        name = "x"
        aging_after_s = true # <-

        [[service]]
        key = "cash"
        name = "Cash"
        prefix = "A"
        active = "yes" # <-

        [[point]]
        serial = "2" # <-
        name = "Window 2"
        """
    )

    assert problems(text) == [
        (marked(text)[0], "[site]: aging_after_s must be an integer (seconds), not true"),
        (marked(text)[1], 'service "cash": active must be true or false, not the string "yes"'),
        (marked(text)[2], '[[point]] #1: serial must be an integer, not the string "2"'),
    ]


def test_a_duplicate_serial_points_at_the_second_point_and_the_first():
    text = HEAD + '\n[[point]]\nname = "Also one"\nserial = 1 # <-\n'

    assert only_problem(text) == (
        marked(text)[0],
        "point 1: serial 1 is already used by the point on line 18",
    )


def test_a_duplicate_service_key():
    text = HEAD + '\n[[service]]\nkey = "cash" # <-\nname = "Cash again"\nprefix = "B"\n'

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert reason.startswith('service "cash": service "cash" is already declared on line 13')


def test_a_prefix_used_twice():
    text = HEAD + '\n[[service]]\nkey = "loans"\nname = "Loans"\nprefix = "A" # <-\n'

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert reason == 'service "loans": prefix "A" is already used by service "cash" on line 15'


def test_a_point_naming_an_unknown_service():
    text = HEAD + '\n[[point]]\nserial = 2\nname = "Window 2"\nservices = ["cash", "loans"] # <-\n'

    assert only_problem(text) == (marked(text)[0], 'point 2: service "loans" is not declared')


def test_a_point_unit_naming_an_unknown_point():
    text = HEAD + '\n[[device]]\nid = "point-9"\nkind = "point"\npoint = 9 # <-\n'

    assert only_problem(text) == (marked(text)[0], 'device "point-9": point 9 is not declared')


def test_a_point_unit_without_a_point_is_reported_at_its_table():
    text = HEAD + '\n[[device]] # <-\nid = "point-1"\nkind = "point"\n'

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert "point is missing" in reason


def test_only_point_units_name_a_point():
    text = HEAD + '\n[[device]]\nid = "kiosk-1"\nkind = "kiosk"\npoint = 1 # <-\n'

    assert only_problem(text) == (
        marked(text)[0],
        'device "kiosk-1": point is only for devices of kind "point", not "kiosk"',
    )


def test_a_duplicate_device_id():
    text = HEAD + site(
        """
        [[device]]
        id = "kiosk-1"
        kind = "kiosk"

        [[device]]
        id = "kiosk-1" # <-
        kind = "display"
        """
    )

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert reason.startswith('device "kiosk-1": device id "kiosk-1" is already used on line ')


def test_a_duplicate_priority_key():
    text = HEAD.replace('key = "free"', 'key = "paid" # <-')

    assert only_problem(text) == (
        marked(text)[0],
        'priority "paid": priority "paid" is already declared on line 5',
    )


def test_a_ratio_must_give_one_share_per_priority_class():
    text = HEAD.replace(
        'name = "Test branch"', 'name = "x"\npriority_policy = "ratio"\npriority_ratio = [3, 1, 1] # <-'
    )

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert "priority_ratio has 3 shares but 2 [[priority]] classes are declared" in reason


def test_a_ratio_policy_needs_a_ratio():
    text = HEAD.replace('name = "Test branch"', 'name = "x"\npriority_policy = "ratio" # <-')

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert 'priority_policy "ratio" needs priority_ratio' in reason


def test_a_bad_time_zone():
    text = '[site]\nname = "x"\ntimezone = "Europe/Atlantis" # <-\n'

    assert only_problem(text) == (
        3,
        '[site]: timezone "Europe/Atlantis" is not an IANA time zone (e.g. "Europe/Berlin")',
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('["9-13"]', 'mon: "9-13" is not an interval like "09:00-13:00"'),
        ('["09:00-25:00"]', 'mon: "09:00-25:00" is not an interval like "09:00-13:00"'),
        ('["13:00-09:00"]', 'mon: "13:00-09:00" does not start before it ends'),
        ('["09:00-13:00", "12:00-14:00"]', 'mon: "12:00-14:00" overlaps "09:00-13:00"'),
        ('"09:00-13:00"', 'mon must be an array of "HH:MM-HH:MM" strings, not the string "09:00-13:00"'),
    ],
)
def test_bad_hours_are_named(value, reason):
    text = f'[site]\nname = "x"\n\n[hours]\ntue = ["10:00-11:00"]\nmon = {value} # <-\n'

    assert only_problem(text) == (marked(text)[0], f"[hours]: {reason}")


def test_an_unknown_weekday_and_a_bad_closed_date():
    text = site(
        """\
        [site]
        name = "x"
        [hours]
        monday = ["09:00-13:00"] # <-
        closed = ["2026-02-30"] # <-
        """
    )

    found = problems(text)

    assert [line for line, _ in found] == marked(text)
    assert found[0][1].startswith('[hours]: unknown key "monday" (days are mon, tue, wed, thu, fri, sat, sun')
    assert found[1][1] == '[hours]: closed: the string "2026-02-30" is not a date like "2026-12-25"'


def test_a_password_in_the_site_file_is_refused_with_the_way_to_set_one():
    text = HEAD + '\n[[user]]\nname = "anna"\nrole = "specialist"\npassword = "secret" # <-\n'

    line, reason = only_problem(text)

    assert line == marked(text)[0]
    assert "password does not belong in the site file" in reason
    assert "`nextup user add anna --role specialist`" in reason
    assert "secret" not in reason.replace('"password"', "")


def test_a_user_at_an_unknown_point_and_with_an_unknown_role():
    text = HEAD + '\n[[user]]\nname = "anna"\nrole = "boss" # <-\npoints = [1, 7] # <-\n'

    assert problems(text) == [
        (marked(text)[0], 'user "anna": role "boss" is not one of "admin", "specialist"'),
        (marked(text)[1], 'user "anna": point 7 is not declared'),
    ]


def test_kiosk_buttons_name_declared_services_and_classes():
    text = HEAD + site(
        """
        [[device]]
        id = "kiosk-1"
        kind = "kiosk"

        [device.buttons]
        cash = "cash"
        loans = "loans" # <-
        vip = { service = "cash", priority = "gold" } # <-
        """
    )

    assert problems(text) == [
        (marked(text)[0], 'device "kiosk-1": button "loans": service "loans" is not declared'),
        (marked(text)[1], 'device "kiosk-1": button "vip": priority "gold" is not declared'),
    ]


def test_a_missing_site_table_and_required_keys():
    text = '[[service]] # <-\nkey = "cash"\n'

    found = problems(text)

    assert found[0] == (1, 'the [site] table is missing; it needs at least name = "..."')
    assert (1, 'service "cash": name is missing') in found
    assert any(line == 1 and 'prefix is missing (e.g. prefix = "A")' in r for line, r in found)


# --- all at once, and in the right place whatever the TOML looks like ---------------------------


def test_every_problem_is_reported_together_in_line_order():
    text = site(
        """\
        [site]
        name = "x"
        timezone = "Nowhere/Town" # <-

        [[service]]
        key = "cash"
        name = "Cash"
        prefix = "a" # <-

        [[point]]
        serial = 1
        name = "Window 1"
        services = ["cash", "loans"] # <-

        [[device]]
        id = "point-1"
        kind = "point"
        point = 2 # <-
        """
    )

    found = problems(text)

    assert [line for line, _ in found] == marked(text)
    assert "timezone" in found[0][1] and "prefix" in found[1][1]
    assert "loans" in found[2][1] and "point 2" in found[3][1]


def test_nothing_is_returned_when_anything_is_wrong(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text((EXAMPLES / "site.toml").read_text().replace('prefix = "C"', 'prefix = "A"'))

    with pytest.raises(
        InvalidSiteFile, match=r"site.toml:\d+: service \"accounts\": prefix \"A\" is already used"
    ):
        parse_site_file(bad)


def test_lines_are_found_past_multiline_values_and_lookalike_text():
    text = site(
        '''\
        [site]
        name = "x"

        [[service]]
        key = "cash"
        name = "Cash"
        description = """
        [[point]]
        serial = 1
        """
        prefix = "A"

        [[service]]
        key = "loans"
        name = 'Loans [[point]] # not a table'
        prefix = "B"

        [[point]]
        serial = 1
        services = [
          "cash",
          "loans",
        ]
        name = "Window 1"

        [[point]]
        "serial" = 2
        name = "Window 2"
        services = [
          "cash", # [[point]]
        ]
        [[point]]
        serial = 3
        name = "Window 3"
        services = ["cash"]
        active = 1 # <-
        '''
    )

    assert only_problem(text) == (marked(text)[0], "point 3: active must be true or false, not the integer 1")


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[site]\nname = "x"\n\n[[point]]\nserial = = 1\n')

    with pytest.raises(InvalidSiteFile) as caught:
        parse_site_file(path)

    assert str(caught.value).startswith(f"{path}:5:")
    assert "not valid TOML" in str(caught.value)


def test_a_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "site.toml"
    path.write_bytes(b'[site]\nname = "\xff"\n')

    with pytest.raises(InvalidSiteFile, match=r"site.toml:2: the site file is not UTF-8 text"):
        parse_site_file(path)
