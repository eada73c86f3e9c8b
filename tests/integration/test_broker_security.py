"""The broker's side of security, proven against the real Mosquitto with the project's configuration.

A refused publish is seen in its MQTT 5 PUBACK (135, not authorized). A
message a client must not read is proven absent by ordering: the broker
delivers one publisher's messages to a subscriber in order, so when a marker
sent after the forbidden message arrives alone, the forbidden one was
withheld, not late.
"""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from broker.mosquitto import (
    ACCEPTED,
    CENTRAL_USER,
    PASSWORD_FILE,
    SECRETS_FILE,
    TlsFiles,
    render_acl,
    try_login,
    write_credentials,
)
from nextup.contract import Topics

NOT_AUTHORIZED = 135
BAD_USER_OR_PASSWORD = 134
topics = Topics("main")


def marker() -> bytes:
    return uuid.uuid4().hex.encode()


def received_until(peer, end: bytes) -> list[tuple[str, bytes]]:
    """What ``peer`` received up to the message whose payload is ``end`` (not included)."""
    got = []
    while True:
        msg = peer.next_message()
        if msg.payload == end:
            return got
        got.append((msg.topic, msg.payload))


def without(url: str, password: str | None = None) -> str:
    """``url`` with another password, or with no user at all."""
    scheme, rest = url.split("://")
    credentials, address = rest.split("@")
    if password is None:
        return f"{scheme}://{address}"
    return f"{scheme}://{credentials.split(':')[0]}:{password}@{address}"


# --- logging in -------------------------------------------------------------------------


def test_anonymous_and_wrong_password_logins_are_refused(broker, mqtt_peer):
    kiosk = broker.add_device("kiosk-1", "kiosk")

    assert mqtt_peer(without(kiosk), connect=False).connect().value == NOT_AUTHORIZED
    for bad in (without(kiosk, "not-the-password"), without(broker.central_url, "not-the-password")):
        rc = mqtt_peer(bad, connect=False).connect()
        assert rc.is_failure and rc.value in (NOT_AUTHORIZED, BAD_USER_OR_PASSWORD)
    stranger = f"mqtt://kiosk-9:{broker.passwords['kiosk-1']}@127.0.0.1:{broker.port}"
    assert mqtt_peer(stranger, connect=False).connect().is_failure
    # The same broker lets the right password in: the refusals were about the credentials.
    assert not mqtt_peer(kiosk, connect=False).connect().is_failure


def test_one_device_cannot_use_another_devices_password(broker):
    broker.add_device("kiosk-1", "kiosk")
    broker.add_device("kiosk-2", "kiosk")

    assert try_login(broker.host, broker.port, "kiosk-1", broker.passwords["kiosk-2"]) != ACCEPTED
    assert try_login(broker.host, broker.port, "kiosk-1", broker.passwords["kiosk-1"]) == ACCEPTED


# --- publishing -------------------------------------------------------------------------


def test_a_device_cannot_publish_under_another_devices_id(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    central.subscribe(f"{topics.root}/device/+/ticket/request")
    kiosk = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    broker.add_device("kiosk-2", "kiosk")
    forged, end = b'{"request_id": "forged", "service": "cash"}', marker()

    assert kiosk.publish(topics.ticket_request("kiosk-2"), forged).value == NOT_AUTHORIZED
    assert not kiosk.publish(topics.ticket_request("kiosk-1"), end).is_failure

    assert received_until(central, end) == []


def test_a_display_cannot_send_commands(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    central.subscribe(Topics.every_site())
    display = mqtt_peer(broker.add_device("display-1", "display"))
    broker.add_device("point-1", "point")
    command = b'{"command_id": "c1", "action": "next"}'

    for topic in (
        topics.command("display-1"),
        topics.command("point-1"),
        topics.point_state(1),
        topics.board,
        topics.call,
        topics.ticket_reply("display-1"),
        topics.device_config("display-1"),
    ):
        assert display.publish(topic, command).value == NOT_AUTHORIZED, topic
    end = marker()
    assert not display.publish(topics.device_status("display-1"), end).is_failure

    assert received_until(central, end) == []


def test_each_role_writes_only_its_own_leaves(broker, mqtt_peer):
    kiosk = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    point = mqtt_peer(broker.add_device("point-1", "point"))

    assert not kiosk.publish(topics.ticket_request("kiosk-1"), b"{}").is_failure
    assert not kiosk.publish(topics.ticket_printed("kiosk-1"), b"{}").is_failure
    assert kiosk.publish(topics.command("kiosk-1"), b"{}").value == NOT_AUTHORIZED
    assert not point.publish(topics.command("point-1"), b"{}").is_failure
    assert point.publish(topics.ticket_request("point-1"), b"{}").value == NOT_AUTHORIZED
    assert point.publish(topics.sim_press("point-1"), b"next").value == NOT_AUTHORIZED


# --- reading ----------------------------------------------------------------------------


def test_a_kiosk_cannot_read_another_kiosks_replies(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    spy = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    owner = mqtt_peer(broker.add_device("kiosk-2", "kiosk"))
    # A wildcard is granted, so the broker has to filter each message it would deliver.
    spy.subscribe(f"{topics.root}/device/+/ticket/reply")
    assert spy.subscribe(topics.ticket_reply("kiosk-2")).value == 1
    owner.subscribe(topics.ticket_reply("kiosk-2"))
    reply, end = b'{"request_id": "r1", "ok": true}', marker()

    central.publish(topics.ticket_reply("kiosk-2"), reply)
    assert owner.next_message().payload == reply
    central.publish(topics.ticket_reply("kiosk-1"), end)

    assert received_until(spy, end) == []


@pytest.mark.parametrize(
    ("kind", "readable"),
    [
        ("kiosk", {"site", "own config", "own reply", "sim press"}),
        ("point", {"site", "own config", "own reply", "sim press", "point state"}),
        ("display", {"site", "own config", "own reply", "sim press", "point state", "board", "call"}),
    ],
)
def test_each_role_reads_what_it_needs_and_nothing_more(broker, mqtt_peer, kind, readable):
    device_id = f"{kind}-1"
    central = mqtt_peer(broker.central_url)
    device = mqtt_peer(broker.add_device(device_id, kind))
    broker.add_device("other-1", "display")
    device.subscribe(Topics.every_site())
    sent = {
        "site": topics.site_state,
        "board": topics.board,
        "call": topics.call,
        "point state": topics.point_state(1),
        "own config": topics.device_config(device_id),
        "own reply": topics.ticket_reply(device_id),
        "sim press": topics.sim_press(device_id),
        "other's config": topics.device_config("other-1"),
        "other's sim press": topics.sim_press("other-1"),
        "other's status": topics.device_status("other-1"),
        "another site": Topics("annex").board,
    }
    for name, topic in sent.items():
        central.publish(topic, name.encode())
    end = marker()
    central.publish(topics.device_config(device_id), end)

    assert {payload.decode() for _, payload in received_until(device, end)} == readable


def test_only_central_reads_the_brokers_own_topics(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    kiosk = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    version = "$SYS/broker/version"
    end = marker()
    central.publish(topics.device_config("kiosk-1"), end, retain=True)

    central.subscribe(version)
    assert b"mosquitto" in central.next_message().payload
    kiosk.subscribe(version)
    kiosk.subscribe(topics.device_config("kiosk-1"))
    assert received_until(kiosk, end) == []


def test_central_receives_device_traffic_through_a_shared_subscription(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    for topic in topics.central_subscriptions(shared=True):
        assert not central.subscribe(topic).is_failure
    kiosk = mqtt_peer(broker.add_device("kiosk-1", "kiosk"))
    request = b'{"request_id": "r1", "service": "cash"}'

    kiosk.publish(topics.ticket_request("kiosk-1"), request)

    msg = central.next_message()
    assert (msg.topic, msg.payload) == (topics.ticket_request("kiosk-1"), request)


def test_an_oversized_message_gets_its_sender_disconnected(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    central.subscribe(topics.device_tree("kiosk-1"))
    url = broker.add_device("kiosk-1", "kiosk")
    kiosk = mqtt_peer(url)

    kiosk.client.publish(topics.ticket_request("kiosk-1"), b"x" * 64 * 1024, qos=1)

    assert kiosk.disconnected.wait(5)
    end = marker()
    mqtt_peer(url).publish(topics.ticket_request("kiosk-1"), end)
    assert received_until(central, end) == []


# --- changing credentials on a running broker ---------------------------------------------


def test_a_rotated_password_locks_the_old_one_out_while_other_devices_stay_connected(broker, mqtt_peer):
    pid = broker.pid
    old_url = broker.add_device("kiosk-1", "kiosk")
    rotated = mqtt_peer(old_url)
    bystander = mqtt_peer(broker.add_device("point-1", "point"))
    central = mqtt_peer(broker.central_url)

    new_url = broker.rotate("kiosk-1")

    assert new_url != old_url and broker.pid == pid
    assert mqtt_peer(old_url, connect=False).connect().is_failure
    assert rotated.disconnected.wait(5)  # Mosquitto drops a session whose password is gone
    assert not mqtt_peer(new_url, connect=False).connect().is_failure
    assert not bystander.publish(topics.command("point-1"), b"{}").is_failure
    assert not central.publish(topics.board, b"{}").is_failure
    assert not bystander.disconnected.is_set() and not central.disconnected.is_set()


def test_a_removed_device_loses_access(broker, mqtt_peer):
    url = broker.add_device("kiosk-1", "kiosk")
    mqtt_peer(url)

    broker.remove_device("kiosk-1")

    assert mqtt_peer(url, connect=False).connect().is_failure


# --- TLS --------------------------------------------------------------------------------


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca_and_server_cert(folder: Path, name: str = "ca") -> tuple[Path, TlsFiles]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / f"{name}.key", folder / f"{name}.crt"
    key, csr, crt, ext = (folder / f"server.{s}" for s in ("key", "csr", "crt", "ext"))
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "2",
            "-subj", "/CN=Nextup test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, TlsFiles(cafile=ca_crt, certfile=crt, keyfile=key)


def test_devices_connect_over_tls_to_a_broker_they_can_verify(tmp_path, make_broker, mqtt_peer):
    ca, server = make_ca_and_server_cert(tmp_path / "pki")
    other_ca, _ = make_ca_and_server_cert(tmp_path / "other-pki")
    broker = make_broker(tls=server)
    broker.add_device("kiosk-1", "kiosk")
    tls_url = broker.url("kiosk-1", tls=True)

    kiosk = mqtt_peer(tls_url, ca_file=str(ca))
    assert not kiosk.publish(topics.ticket_request("kiosk-1"), b"{}").is_failure
    assert kiosk.publish(topics.ticket_request("kiosk-2"), b"{}").value == NOT_AUTHORIZED

    assert mqtt_peer(without(tls_url, "wrong"), connect=False, ca_file=str(ca)).connect().is_failure
    with pytest.raises(ssl.SSLError):
        mqtt_peer(tls_url, ca_file=str(other_ca))
    with pytest.raises(OSError):  # plain MQTT on the TLS port gets no CONNACK
        try_login(broker.host, broker.tls_port, "kiosk-1", broker.passwords["kiosk-1"], timeout=2)
    context = ssl.create_default_context(cafile=str(ca))
    password = broker.passwords["kiosk-1"]
    assert try_login(broker.host, broker.tls_port, "kiosk-1", password, tls=context) == ACCEPTED


# --- the credential files -----------------------------------------------------------------


DEVICES = [("kiosk-1", "kiosk"), ("point-1", "point"), ("display-1", "display")]


def test_credentials_are_random_kept_and_never_stored_in_plain_for_the_broker(tmp_path):
    passwords = write_credentials(tmp_path, "main", DEVICES)

    assert set(passwords) == {CENTRAL_USER, "kiosk-1", "point-1", "display-1"}
    assert len(set(passwords.values())) == 4
    assert all(len(p) >= 22 for p in passwords.values())  # token_urlsafe: >= 128 bits
    hashed = (tmp_path / PASSWORD_FILE).read_text()
    assert not any(p in hashed for p in passwords.values())
    assert stat.S_IMODE(os.stat(tmp_path / SECRETS_FILE).st_mode) == 0o600
    assert write_credentials(tmp_path, "main", DEVICES) == passwords


def test_rotation_changes_only_the_passwords_asked_for(tmp_path):
    before = write_credentials(tmp_path, "main", DEVICES)

    after = write_credentials(tmp_path, "main", DEVICES, rotate={"kiosk-1"})

    assert after["kiosk-1"] != before["kiosk-1"]
    del after["kiosk-1"], before["kiosk-1"]
    assert after == before
    everything = write_credentials(tmp_path, "main", DEVICES, rotate=True)
    assert all(everything[u] != before[u] for u in before)


def test_central_may_be_given_its_password(tmp_path):
    given = "a-password-from-the-vault-0123456789"

    assert write_credentials(tmp_path, "main", DEVICES, central_password=given)[CENTRAL_USER] == given


@pytest.mark.parametrize(
    ("devices", "kwargs"),
    [
        ([("kiosk-1", "printer")], {}),
        ([("kiosk 1", "kiosk")], {}),
        ([("kiosk-1\n", "kiosk")], {}),
        ([("kiosk-1", "kiosk"), ("kiosk-1", "point")], {}),
        ([(CENTRAL_USER, "kiosk")], {}),
        (DEVICES, {"central_password": "short"}),
        (DEVICES, {"rotate": {"kiosk-9"}}),
    ],
)
def test_bad_input_changes_nothing(tmp_path, devices, kwargs):
    write_credentials(tmp_path, "main", DEVICES)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with pytest.raises(ValueError):
        write_credentials(tmp_path, "main", devices, **kwargs)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_the_acl_names_every_topic_through_the_contract():
    acl = render_acl("main", DEVICES)

    assert f"topic readwrite {Topics.every_site()}" in acl
    assert f"topic write {topics.command('point-1')}" in acl
    assert f"topic read {topics.board}" in acl
    assert "%" not in acl  # no pattern lines: every right is spelled per user


# --- persistence ------------------------------------------------------------------------


def test_retained_state_survives_a_clean_restart(broker, mqtt_peer):
    central = mqtt_peer(broker.central_url)
    board = marker()
    central.publish(topics.board, board, retain=True)
    central.close()

    broker.stop()
    broker.stop()
    broker.start()

    display = mqtt_peer(broker.add_device("display-1", "display"))
    display.subscribe(topics.board)
    assert display.next_message().payload == board


def test_a_hard_kill_keeps_what_the_last_autosave_wrote(make_broker, mqtt_peer):
    broker = make_broker(autosave_interval=1)
    central = mqtt_peer(broker.central_url)
    board = marker()
    central.publish(topics.board, board, retain=True)
    database = broker.config.data_dir / "nextup.db"
    # Wait for the save itself rather than for a time: the payload shows up in the file.
    deadline = time.monotonic() + 10
    while not (database.exists() and board in database.read_bytes()):
        assert time.monotonic() < deadline, "the broker never saved its database"
        time.sleep(0.05)

    broker.kill()
    broker.kill()
    broker.start()

    reader = mqtt_peer(broker.central_url)
    reader.subscribe(topics.board)
    assert reader.next_message().payload == board
