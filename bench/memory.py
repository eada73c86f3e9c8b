"""Resident memory (VmRSS) of each program at idle and under load.

Runs ``nextup central`` (SQLite, demo site), ``nextup kiosk --sim``, ``nextup
point --sim`` and ``nextup display --sim`` as processes of their own (the
devices through ``python -m nextup``, the entry point of the installed
command) against a real Mosquitto, reads /proc/<pid>/status after they
settle, then presses the kiosk's and the point unit's buttons (sim presses
over MQTT) for a while and keeps each program's peak.  The baseline is a bare Python with paho-mqtt
imported: the floor any edge program stands on.

``python -m bench.memory [--seconds 20] [--rate 20] [--resolution 1920x1080] [--no-player] [--breakdown]``

The display plays its chime and speech with ``aplay`` as deployed (the
display role installs alsa-utils); where aplay is missing, the bench puts a
silent stand-in on the display's PATH that takes as long as the sound,
like SDL's dummy audio driver.  ``--no-player`` leaves the stand-in out: on
a machine without aplay the display then falls back to pygame's mixer.
``--breakdown`` adds, for each edge program at idle, the mappings that hold
most of its resident memory (anonymous memory, the heap, each library).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from bench.site import REPO, bulk_tickets, central_process, machine, prepare_database, rss_mb, stop_process
from broker.mosquitto import RunningBroker
from nextup.contract import Topics

DEVICES = {"kiosk-1": ("kiosk", "[kiosk]\nholdoff_s = 0.000001\n"),
           "point-1": ("point", "[point]\nholdoff_s = 0.000001\n"),
           "display-1": ("display", 'resolution = "{resolution}"\n')}
TARGETS = {"central": 150, "kiosk": 40, "point": 40, "display": 40}


def _edge(kind: str, device_id: str, toml: str, url: str, site: str, folder: Path,
          player: bool = True) -> subprocess.Popen[bytes]:
    config = folder / f"{device_id}.toml"
    config.write_text(toml)
    env = {**os.environ, "NEXTUP_DEVICE_ID": device_id, "NEXTUP_MQTT_URL": url, "NEXTUP_SITE": site,
           "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    if kind == "display" and player and shutil.which("aplay") is None:
        env["PATH"] = _silent_player(folder) + os.pathsep + env.get("PATH", "")
    log = open(folder / f"{device_id}.log", "wb")  # noqa: SIM115 - the process keeps it
    return subprocess.Popen([sys.executable, "-m", "nextup", kind, "--sim", "--config", str(config)],
                            env=env, stdout=log, stderr=log, cwd=REPO)


def _silent_player(folder: Path) -> str:
    """A folder holding an ``aplay`` that plays to nowhere, for as long as the sound lasts."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    aplay = bin_dir / "aplay"
    # 16-bit mono at 22,050 Hz, what espeak-ng and the chime write: 44,100 bytes a second
    aplay.write_text('#!/bin/sh\nfor f; do :; done\nsleep $(( $(stat -c %s "$f") / 44100 ))\n')
    aplay.chmod(0o755)
    return str(bin_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="of load")
    parser.add_argument("--rate", type=float, default=20.0, help="presses per second on each device")
    parser.add_argument("--resolution", default="640x360", help="of the display's frame")
    parser.add_argument("--no-player", action="store_true", help="no silent aplay for the display")
    parser.add_argument("--breakdown", action="store_true", help="where each edge program's memory is")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nextup-bench-") as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'nextup.sqlite3'}"
        prepare_database(url)
        bulk_tickets(url, "cash", int(args.seconds * args.rate) + 100)
        with RunningBroker(folder / "broker") as broker:
            urls = {d: broker.add_device(d, kind) for d, (kind, _) in DEVICES.items()}
            floor_code = "import paho.mqtt.client, time; time.sleep(600)"
            baseline = subprocess.Popen([sys.executable, "-c", floor_code])
            processes = {"central": central_process(url, broker, folder)}
            for device_id, (kind, toml) in DEVICES.items():
                toml = toml.replace("{resolution}", args.resolution)
                processes[kind] = _edge(kind, device_id, toml, urls[device_id], broker.site, folder,
                                        player=not args.no_player)
            try:
                time.sleep(8)  # connected, configured, first frame drawn
                for name, p in processes.items():
                    if p.poll() is not None:
                        raise RuntimeError(f"{name} exited: {(folder / (name + '.log')).read_text()[-2000:]}")
                idle = {name: rss_mb(p.pid) for name, p in processes.items()}
                breakdown = {name: _breakdown(p.pid) for name, p in processes.items()
                             if args.breakdown and name != "central"}
                floor = rss_mb(baseline.pid)
                peak = dict(idle)
                stop = threading.Event()

                def sample() -> None:
                    while not stop.wait(0.1):
                        for name, p in processes.items():
                            peak[name] = max(peak[name], rss_mb(p.pid))

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                presses = _press(broker, args.seconds, args.rate)
                stop.set()
                sampler.join()
                settled = {name: rss_mb(p.pid) for name, p in processes.items()}
            finally:
                for p in processes.values():
                    stop_process(p)
                baseline.kill()
                baseline.wait()

    sound = "aplay" if shutil.which("aplay") or not args.no_player else "pygame's mixer"
    print(f"resident memory (VmRSS), {presses} sim presses in {args.seconds:.0f} s,"
          f" display frame {args.resolution}, sound through {sound} ({machine()})")
    print(f"  bare Python + paho-mqtt (baseline)  {floor:6.1f} MB")
    for name, target in TARGETS.items():
        print(f"  {name:<8} idle {idle[name]:6.1f} MB   under load peak {peak[name]:6.1f} MB"
              f" (after {settled[name]:6.1f})   {peak[name] / floor:4.1f}x baseline   target <= {target} MB")
    for name, rows in breakdown.items():
        print(f"  {name} at idle, largest mappings (Rss MB):")
        for mapping, mb in rows:
            print(f"    {mb:6.1f}  {mapping}")


def _breakdown(pid: int, top: int = 10) -> list[tuple[str, float]]:
    """The ``top`` mappings of ``pid`` by resident memory, a library's segments summed."""
    sizes: dict[str, int] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head[0].endswith(":"):  # a mapping's first line: range perms offset dev inode [path]
            name = os.path.basename(head[5]) if len(head) > 5 else "[anonymous]"
        elif head[0] == "Rss:":
            sizes[name] = sizes.get(name, 0) + int(head[1])
    rows = sorted(sizes.items(), key=lambda item: -item[1])
    rest = sum(kb for _, kb in rows[top:])
    return [(n, kb / 1024) for n, kb in rows[:top]] + [("(all the others)", rest / 1024)]


def _press(broker: RunningBroker, seconds: float, rate: float) -> int:
    """Press the kiosk's cash button and the point's next, ``rate`` times a second each."""
    topics = Topics(broker.site)
    parts = urlsplit(broker.central_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-presser", protocol=mqtt.MQTTv5)
    client.username_pw_set(unquote(parts.username or ""), unquote(parts.password or ""))
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        client.publish(topics.sim_press("kiosk-1"), "cash", qos=1)
        client.publish(topics.sim_press("point-1"), "next", qos=1)
        count += 2
        time.sleep(1 / rate)
    client.disconnect()
    client.loop_stop()
    return count


if __name__ == "__main__":
    main()
