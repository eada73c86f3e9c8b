"""What the ``nextup`` command runs first.

A kiosk, point unit or hall display runs for months on a small board with a
40 MB budget, and click with the definitions of every other command costs
each of them about 1 MB that it never uses after reading its two or three
options.  So ``nextup kiosk|point|display`` with the options those commands
take (``--sim``, ``--config FILE``, the display's ``--screenshot FILE``) run
here without click.  Any other argument list, including one with a mistake
in it or ``--help``, goes to the click CLI of ``nextup.cli``, which answers
exactly as it would have: the command line is the same either way.
"""

from __future__ import annotations

import os
import sys
from typing import Any

KINDS = ("kiosk", "point", "display")
# The options with a value each device command takes; ``--sim`` is their only flag.
_VALUES = {"kiosk": ("--config",), "point": ("--config",), "display": ("--config", "--screenshot")}


def main(argv: list[str] | None = None) -> None:
    """The ``nextup`` command: a device straight away, anything else through click."""
    args = sys.argv[1:] if argv is None else list(argv)
    call = device_call(args)
    if call is None:
        from nextup.cli import main as cli

        cli(args=argv, prog_name=None if argv is None else "nextup")
        return
    from central.domain.errors import NextupError

    try:
        run_device(**call)
    except NextupError as exc:  # as nextup.cli.NextupGroup reports it
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, EOFError):  # as click's standalone mode reports it
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr)
        sys.exit(1)


def device_call(args: list[str]) -> dict[str, Any] | None:
    """The arguments of ``run_device`` for ``args``, or None when click must read them.

    None for anything click would answer with a message (help, an unknown
    option, a missing value, a config file that is not there...), so that
    message stays click's.
    """
    if not args or args[0] not in KINDS:
        return None
    kind = args[0]
    call: dict[str, Any] = {"kind": kind, "config": None, "sim": False}
    if kind == "display":
        call["screenshot"] = None
    rest = args[1:]
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name == "--sim" and not equals:
            call["sim"] = True
            continue
        if name not in _VALUES[kind]:
            return None
        if not equals:
            if not rest:
                return None
            value = rest.pop(0)
        if not value or value.startswith("-"):
            return None
        if name == "--config" and not _readable_file(value):
            return None
        if name == "--screenshot" and os.path.exists(value) and not _readable_file(value):
            return None
        call[name[2:]] = value
    return call


def _readable_file(path: str) -> bool:
    """What ``click.Path(dir_okay=False)`` accepts of a path that exists."""
    return os.path.exists(path) and not os.path.isdir(path) and os.access(path, os.R_OK)


def run_device(kind: str, config: str | None, sim: bool, screenshot: str | None = None) -> None:
    """Runs the kiosk, point unit or hall display until it is stopped."""
    from nextup import logs
    from nextup.settings import SettingsError, load

    if kind not in KINDS:
        raise SettingsError(f"device kind {kind!r} is not one of {', '.join(KINDS)}")
    settings = load(config)
    # one line per event on stderr, JSON unless it is a terminal, named after the device
    logs.setup(settings.device_id or kind)
    if kind == "kiosk":
        from edge.kiosk import Kiosk

        with Kiosk(settings, sim=sim) as kiosk:
            kiosk.run()
    elif kind == "point":
        from edge.pointbutton import PointUnit

        with PointUnit(settings, sim=sim) as point:
            point.run()
    else:
        from edge.display.app import run_display

        run_display(settings, sim=sim, screenshot=screenshot)


if __name__ == "__main__":
    main()
