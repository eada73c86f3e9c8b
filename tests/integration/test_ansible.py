"""The Ansible playbook, linted and applied for real.

A whole hall (central, a kiosk, a point unit, a display) is provisioned onto
this machine: each host is the local host with its own install prefix under a
temp dir, packages, users and systemd left alone (nextup_manage_system and
nextup_manage_services off). Then the broker and central are started from
what the roles installed, a kiosk asks for a ticket with the credentials the
roles gave it, and a second run must change nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.mosquitto import BrokerConfig, TlsFiles, free_port, render_config, try_login
from nextup.contract import TicketReply, Topics

# Two runs of the playbook on a loaded 2-core machine take minutes, not seconds.
pytestmark = [pytest.mark.ansible, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
PLAYBOOK = [str(BIN / "ansible-playbook"), "site.yml"]
EXAMPLE_VAULT_PASSWORD = "example-only-vault-password"
ADMIN_PASSWORD = "admin-password-of-the-test"
# The parts of the repository the wheel is built from.
SOURCES = ("pyproject.toml", "README.md", "nextup", "central", "edge", "broker")

if shutil.which("ansible-playbook", path=str(BIN)) is None and not os.environ.get("CI"):  # pragma: no cover
    # The dev extra installs it; in CI a missing ansible-core fails below instead of skipping.
    pytest.skip("ansible-core is not installed (pip install -e '.[dev]')", allow_module_level=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ANSIBLE / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_LOCAL_TEMP"] = env["ANSIBLE_REMOTE_TEMP"] = str(Path(os.environ.get("TMPDIR", "/tmp")))
    return env


def _run(argv: list[str], *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ANSIBLE, env=_env(), capture_output=True, text=True, timeout=timeout)


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {"ok": n, "changed": n, ...}}."""
    recap = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines()[1:]:
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            recap[match[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match[2])}
    return recap


def _wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} does not listen on port {port}")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The playbook applied twice to a hall of four local hosts; what both runs printed."""
    root = tmp_path_factory.mktemp("hall")
    # A snapshot of the sources: both runs build the same wheel, whatever else changes meanwhile.
    source = root / "source"
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, source / name)
    ports = {"mqtt": free_port(), "mqtts": free_port(), "http": free_port()}
    prefixes = {host: root / host for host in ("central", "kiosk", "point", "display")}
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,
        "nextup_manage_system": False,
        "nextup_manage_services": False,
        "nextup_pi_hardware": False,
        # The test machine's own interpreter: Debian's needs python3-venv, which CI may lack.
        "nextup_python": getattr(sys, "_base_executable", sys.executable),
        "nextup_source_dir": str(source),
        "nextup_broker_port": ports["mqtt"],
        "nextup_broker_tls_port": ports["mqtts"],
        "nextup_broker_host": "127.0.0.1",
        # Bytecode is compiled when a program first runs; compiling every dependency of four
        # virtual environments up front would double the time the test takes.
        "nextup_pip_args": ["--no-compile"],
    }
    inventory = {
        "all": {
            "vars": common,
            "children": {
                "central": {"hosts": {"hall-central": {
                    "nextup_prefix": str(prefixes["central"]),
                    "central_site_file": str(REPO / "examples" / "demo-site.toml"),
                    "central_admin_password": ADMIN_PASSWORD,
                    "central_http": f"127.0.0.1:{ports['http']}",
                    "central_public_url": f"http://127.0.0.1:{ports['http']}",
                    "mosquitto_user": getpass.getuser(),
                    "mosquitto_tls_names": ["localhost", "127.0.0.1"],
                }}},
                "kiosks": {"hosts": {"hall-kiosk": {
                    "nextup_prefix": str(prefixes["kiosk"]),
                    "nextup_device_id": "kiosk-1",
                    "kiosk_printer": "usb:0x04b8:0x0202",
                    "kiosk_buttons": {17: "cash", 27: {"service": "loans", "priority": "paid"}},
                    "kiosk_leds": {"ready": 5, "error": 6},
                }}},
                "points": {"hosts": {"hall-point": {
                    "nextup_prefix": str(prefixes["point"]),
                    "nextup_device_id": "point-1",
                    "pointbutton_serial": 1,
                }}},
                "displays": {"hosts": {"hall-display": {
                    "nextup_prefix": str(prefixes["display"]),
                    "nextup_device_id": "display-1",
                    "display_resolution": "1280x720",
                }}},
            },
        }
    }
    inventory_file = root / "hall.json"
    inventory_file.write_text(json.dumps(inventory))
    runs = [_run([*PLAYBOOK, "-i", str(inventory_file)]) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    yield {"root": root, "prefixes": prefixes, "ports": ports, "runs": runs}


def test_lint_passes_the_production_profile() -> None:
    done = _run([str(BIN / "ansible-lint"), "--profile", "production", "--nocolor"], timeout=280)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_the_playbook_and_example_inventory_pass_the_syntax_check(tmp_path: Path) -> None:
    password = tmp_path / "vault-password"
    password.write_text(EXAMPLE_VAULT_PASSWORD + "\n")
    done = _run([*PLAYBOOK, "--syntax-check", "-i", "inventory/hall.yml",
                 "--vault-password-file", str(password)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_vault_opens_with_the_documented_example_password(tmp_path: Path) -> None:
    password = tmp_path / "vault-password"
    password.write_text(EXAMPLE_VAULT_PASSWORD + "\n")
    vault = "inventory/group_vars/central/vault.yml"
    assert (ANSIBLE / vault).read_text().startswith("$ANSIBLE_VAULT;")
    done = _run([str(BIN / "ansible-vault"), "view", "--vault-password-file", str(password), vault])
    assert done.returncode == 0, done.stderr
    assert re.search(r"^central_admin_password: \S{10,}", done.stdout, re.M)


def test_every_device_of_the_example_inventory_is_in_its_site_file() -> None:
    import tomllib

    import yaml

    inventory = yaml.safe_load((ANSIBLE / "inventory" / "hall.yml").read_text())
    site = tomllib.loads((ANSIBLE / "inventory" / "site.toml").read_text())
    registry = {d["id"]: d for d in site["device"]}
    hosts: dict[str, dict[str, Any]] = {}

    def walk(group: dict[str, Any]) -> None:
        hosts.update(group.get("hosts") or {})
        for child in (group.get("children") or {}).values():
            walk(child)

    walk(inventory["all"])
    devices = {h: v for h, v in hosts.items() if "nextup_device_id" in v}
    assert len(devices) == len(hosts) - 1  # all but central
    for host, values in devices.items():
        assert values["nextup_device_id"] in registry, host
        if "pointbutton_serial" in values:
            assert registry[values["nextup_device_id"]]["point"] == values["pointbutton_serial"]


def test_a_second_run_changes_nothing(hall: dict[str, Any]) -> None:
    first, second = (_recap(run.stdout) for run in hall["runs"])
    hosts = {"hall-central", "hall-kiosk", "hall-point", "hall-display"}
    assert set(first) == set(second) == hosts | {"localhost"}
    assert all(first[h]["changed"] > 0 for h in hosts)
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in first.values())
    changed = {host: r["changed"] for host, r in second.items()}
    assert changed == dict.fromkeys(second, 0), hall["runs"][1].stdout


def test_no_password_reaches_the_playbook_output(hall: dict[str, Any]) -> None:
    central = hall["prefixes"]["central"]
    passwords = json.loads((central / "etc/mosquitto/nextup/credentials.json").read_text())
    assert set(passwords) == {"central", "kiosk-1", "point-1", "point-2", "point-3", "point-4", "display-1"}
    for run in hall["runs"]:
        for secret in [*passwords.values(), ADMIN_PASSWORD]:
            assert secret not in run.stdout + run.stderr


def test_each_device_gets_its_own_credentials_and_the_broker_ca(hall: dict[str, Any]) -> None:
    central = hall["prefixes"]["central"]
    passwords = json.loads((central / "etc/mosquitto/nextup/credentials.json").read_text())
    assert oct((central / "etc/mosquitto/nextup/credentials.json").stat().st_mode & 0o777) == "0o600"
    ca = (central / "etc/mosquitto/nextup/tls/ca.crt").read_text()
    for host, device in (("kiosk", "kiosk-1"), ("point", "point-1"), ("display", "display-1")):
        etc = hall["prefixes"][host] / "etc/nextup"
        url = _env_file(etc / "mqtt.env")["NEXTUP_MQTT_URL"]
        assert url == f"mqtts://{device}:{passwords[device]}@127.0.0.1:{hall['ports']['mqtts']}"
        assert oct((etc / "mqtt.env").stat().st_mode & 0o777) == "0o640"
        assert (etc / "broker-ca.crt").read_text() == ca
        config = (etc / "device.toml").read_text()
        assert f'device_id = "{device}"' in config and str(etc / "broker-ca.crt") in config
        assert passwords[device] not in config
    url = _env_file(central / "etc/nextup/mqtt.env")["NEXTUP_MQTT_URL"]
    assert url == f"mqtt://central:{passwords['central']}@127.0.0.1:{hall['ports']['mqtt']}"


def test_the_broker_config_is_the_projects_template(hall: dict[str, Any]) -> None:
    central = hall["prefixes"]["central"]
    broker_dir = central / "etc/mosquitto/nextup"
    expected = render_config(BrokerConfig(
        directory=broker_dir, data_dir=central / "var/lib/mosquitto",
        port=hall["ports"]["mqtt"], tls=TlsFiles(broker_dir / "tls/ca.crt", broker_dir / "tls/server.crt",
                                                  broker_dir / "tls/server.key"),
        tls_port=hall["ports"]["mqtts"], user=getpass.getuser(),
    ))
    assert (broker_dir / "mosquitto.conf").read_text() == expected


def test_units_have_watchdog_restart_and_the_installed_paths(hall: dict[str, Any]) -> None:
    for host, kind in (("kiosk", "kiosk"), ("point", "point"), ("display", "display")):
        prefix = hall["prefixes"][host]
        unit = (prefix / "etc/systemd/system/nextup-device.service").read_text()
        start = f"ExecStart={prefix}/opt/nextup/venv/bin/nextup {kind}" \
            f" --config {prefix}/etc/nextup/device.toml"
        for line in ("Type=notify", "WatchdogSec=30", "Restart=always", "StartLimitIntervalSec=0", start,
                     f"EnvironmentFile={prefix}/etc/nextup/mqtt.env"):
            assert line in unit.splitlines(), (host, line)
        assert (prefix / "opt/nextup/venv/bin/nextup").exists()
    display = hall["prefixes"]["display"]
    unit = (display / "etc/systemd/system/nextup-device.service").read_text().splitlines()
    assert "Environment=SDL_VIDEODRIVER=kmsdrm" in unit
    assert "Environment=SDL_AUDIODRIVER=alsa" in unit
    central = hall["prefixes"]["central"]
    unit = (central / "etc/systemd/system/nextup-central.service").read_text().splitlines()
    http = f"127.0.0.1:{hall['ports']['http']}"
    start = f"ExecStart={central}/opt/nextup/venv/bin/nextup central --http {http}"
    assert f"{start} --config {central}/etc/nextup/central.toml" in unit
    timer = (central / "etc/systemd/system/nextup-backup.timer").read_text()
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer
    assert "SystemMaxUse=500M" in (central / "etc/systemd/journald.conf.d/50-nextup.conf").read_text()


def test_pi_only_files_are_rendered_even_off_a_pi(hall: dict[str, Any]) -> None:
    kiosk, point, display = (hall["prefixes"][h] for h in ("kiosk", "point", "display"))
    rule = (kiosk / "etc/udev/rules.d/70-nextup-printer.rules").read_text()
    assert 'ATTR{idVendor}=="04b8", ATTR{idProduct}=="0202", MODE="0660", GROUP="lp"' in rule
    assert "dtparam=i2c_arm=on" in (point / "etc/nextup/boot-point.txt").read_text()
    assert (point / "etc/modules-load.d/nextup-i2c.conf").read_text().splitlines()[-1] == "i2c-dev"
    boot = (display / "etc/nextup/boot-display.txt").read_text().splitlines()
    assert "dtoverlay=vc4-kms-v3d" in boot and "hdmi_force_hotplug=1" in boot
    blank = (display / "etc/tmpfiles.d/nextup-consoleblank.conf").read_text()
    assert "w /sys/module/kernel/parameters/consoleblank - - - - 0" in blank
    assert "defaults.pcm.card vc4hdmi0" in (display / "etc/asound.conf").read_text()
    toml = (kiosk / "etc/nextup/device.toml").read_text()
    assert '"17" = "cash"' in toml and '"27" = { priority = "paid", service = "loans" }' in toml


def test_the_installed_broker_and_central_issue_a_ticket_to_the_provisioned_kiosk(
    hall: dict[str, Any], mqtt_peer: Any,
) -> None:
    central = hall["prefixes"]["central"]
    ports = hall["ports"]
    broker = subprocess.Popen(["mosquitto", "-c", str(central / "etc/mosquitto/nextup/mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, **_env_file(central / "etc/nextup/mqtt.env")}
    log = (hall["root"] / "central.log").open("w")
    coordinator = None
    try:
        _wait_port(ports["mqtts"], broker, "mosquitto")
        coordinator = subprocess.Popen(
            [str(central / "opt/nextup/venv/bin/nextup"), "central", "--http", f"127.0.0.1:{ports['http']}",
             "--config", str(central / "etc/nextup/central.toml")],
            cwd=central, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        _wait_port(ports["http"], coordinator, "nextup central")

        kiosk_etc = hall["prefixes"]["kiosk"] / "etc/nextup"
        url = _env_file(kiosk_etc / "mqtt.env")["NEXTUP_MQTT_URL"]
        # Anyone else's password, or none, is refused on the devices' listener.
        tls_url = url.replace("mqtts://", "mqtt://")
        import ssl

        context = ssl.create_default_context(cafile=str(kiosk_etc / "broker-ca.crt"))
        assert try_login("127.0.0.1", ports["mqtts"], "kiosk-1", "not-its-password", tls=context) != 0
        kiosk = mqtt_peer(tls_url, client_id="kiosk-1", ca_file=str(kiosk_etc / "broker-ca.crt"), timeout=15)
        topics = Topics("main")
        assert not kiosk.subscribe(topics.ticket_reply("kiosk-1")).is_failure
        request_id = uuid.uuid4().hex
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.ticket_reply("kiosk-1")
        props.CorrelationData = request_id.encode()
        payload = json.dumps({"request_id": request_id, "service": "cash"})
        kiosk.client.publish(topics.ticket_request("kiosk-1"), payload, qos=1, properties=props)
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, "no reply from central"
            msg = kiosk.next_message(timeout=20)
            reply = TicketReply.parse(msg.payload)
            if reply.request_id == request_id:
                break
        assert reply.ok, reply
        assert reply.ticket is not None and reply.ticket.number.startswith("A")
        assert reply.ticket.track_url.startswith(f"http://127.0.0.1:{ports['http']}/")

        # The database backup the timer runs: a consistent copy holding the ticket.
        backup_dir = central / "var/backups/nextup"
        backup = central / "opt/nextup/libexec/nextup-backup"
        done = subprocess.run([str(backup)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        (copy,) = backup_dir.glob("nextup-*.sqlite3")
        with sqlite3.connect(copy) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] >= 1
    finally:
        if coordinator is not None:
            _stop(coordinator)
        _stop(broker)
        log.close()


def test_the_administrators_password_is_the_one_given_to_the_play(hall: dict[str, Any]) -> None:
    central = hall["prefixes"]["central"]
    python = central / "opt/nextup/venv/bin/python"
    helper = central / "opt/nextup/libexec/provision.py"
    config = central / "etc/nextup/central.toml"
    for password, answer in ((ADMIN_PASSWORD, "matches"), ("a-wrong-password", "differs")):
        argv = [str(python), str(helper), "password-matches", "--config", str(config),
                "--role", "admin", "admin"]
        done = subprocess.run(argv, input=password + "\n", capture_output=True, text=True)
        assert done.stdout.strip() == answer, done.stderr
