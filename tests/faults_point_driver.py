"""A sim point unit whose buttons a test presses through stdin: ``python faults_point_driver.py CONFIG``.

``nextup point --sim`` takes its presses from the broker (``sim/<id>/press``),
which a unit cut off from the network cannot hear; this runs the same
``PointUnit`` (same config, same runtime) and presses its mock buttons when a
line ``press <button>`` comes on stdin, a pipe that does not go through the
network the test cuts.  It prints ``ready`` once connected and subscribed,
and ``pressed <button>`` after each press; the unit's log goes to stderr.
"""

from __future__ import annotations

import logging
import sys
import threading

from edge.pointbutton import PointUnit
from nextup.settings import load


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    # Reconnect within a second once the link is back (the default backs off to 30 s).
    with PointUnit(load(sys.argv[1]), sim=True, reconnect_max_s=1.0) as unit:
        if not unit.runtime.wait_ready(20):
            print("not connected", flush=True)
            return

        def presses() -> None:
            for line in sys.stdin:
                word, _, button = line.strip().partition(" ")
                if word == "press":
                    unit.runtime.press(button)
                    print(f"pressed {button}", flush=True)
            stop.set()  # stdin closed: the test is done

        threading.Thread(target=presses, daemon=True).start()
        print("ready", flush=True)
        unit.run(stop)


if __name__ == "__main__":
    main()
