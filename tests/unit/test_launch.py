"""``nextup kiosk|point|display`` started without click: the same command line, fewer modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from nextup import cli, launch


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "device.toml"
    config.write_text("")
    return {"config": str(config), "dir": str(tmp_path), "shot": str(tmp_path / "frame.png")}


@pytest.mark.parametrize("args", [
    ["kiosk"],
    ["kiosk", "--sim"],
    ["point", "--config", "{config}"],
    ["point", "--config={config}", "--sim"],
    ["display", "--sim", "--config", "{config}", "--screenshot", "{shot}"],
    ["display", "--screenshot={shot}"],
    ["kiosk", "--config", "{config}", "--config", "{config}"],
])
def test_a_device_command_line_reads_as_click_reads_it(args: list[str], files: dict[str, str]) -> None:
    args = [a.format(**files) for a in args]
    call = launch.device_call(args)
    assert call is not None
    command = cli.main.commands[args[0]]
    assert call == {"kind": args[0], **command.make_context(args[0], args[1:]).params}


@pytest.mark.parametrize("args", [
    [],
    ["--help"],
    ["--version"],
    ["central"],
    ["kiosk", "--help"],
    ["kiosk", "--sim=yes"],
    ["kiosk", "--config"],
    ["kiosk", "--config", "{dir}/missing.toml"],
    ["kiosk", "--config", "{dir}"],
    ["kiosk", "--config="],
    ["kiosk", "--screenshot", "{shot}"],
    ["point", "--lcd", "x"],
    ["point", "extra"],
    ["display", "--screenshot", "{dir}"],
    ["display", "--config", "--sim"],
])
def test_anything_else_is_left_to_click(args: list[str], files: dict[str, str]) -> None:
    args = [a.format(**files) for a in args]
    assert launch.device_call(args) is None
    if args[:1] and args[0] in launch.KINDS and "--help" not in args:
        with pytest.raises(click.UsageError):  # so its message is click's
            cli.main.commands[args[0]].make_context(args[0], args[1:])


def test_the_device_commands_take_the_options_the_launcher_knows() -> None:
    for kind in launch.KINDS:
        options = {opt for p in cli.main.commands[kind].params for opt in p.opts}
        assert options == {"--sim", *launch._VALUES[kind]}


# Runs ``python -m nextup <kind> --sim`` up to its first frame or its serving loop, then tells which
# modules it holds.
STARTED = """
import json, sys
from edge.display.app import HallDisplay
from edge.runtime import Device

def report(self, stop=None):
    if isinstance(self, HallDisplay):
        self.open_screen()
        self.redraw(force=True)
    sys.stdout.write(json.dumps(sorted(sys.modules)))

Device.run = report
HallDisplay.run = report
sys.argv = ["nextup", sys.argv[1], "--sim"]
from nextup.__main__ import main
main()
"""


@pytest.mark.parametrize("kind", launch.KINDS)
def test_a_device_runs_without_click_or_central_code(kind: str, tmp_path: Path) -> None:
    aplay = tmp_path / "aplay"  # as installed on a display: pygame's mixer stays out
    aplay.write_text("#!/bin/sh\n")
    aplay.chmod(0o755)
    env = {**os.environ, "NEXTUP_DEVICE_ID": f"{kind}-1", "NEXTUP_MQTT_URL": "mqtt://127.0.0.1:9",
           "NEXTUP_SITE": "main", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
           "PYGAME_HIDE_SUPPORT_PROMPT": "1", "PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("NOTIFY_SOCKET", None)
    done = subprocess.run([sys.executable, "-c", STARTED, kind], capture_output=True, env=env, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    modules = set(json.loads(done.stdout))
    assert f"edge.{'pointbutton' if kind == 'point' else kind}" in modules, "the device was made"
    assert sorted(modules & {"click", "nextup.cli"}) == []
    # the queue, its policies and opening hours are central's; a device needs the errors and the model
    assert sorted(modules & {"central.domain.queue", "central.domain.policy", "central.domain.hours"}) == []
    if kind != "kiosk":  # the kiosk reads the time zone of its number lease
        assert "zoneinfo" not in modules
    if kind == "display":
        assert "pygame.image" not in modules, "no image codecs loaded for the window's icon"
