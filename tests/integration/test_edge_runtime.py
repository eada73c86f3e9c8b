"""The shared device runtime against the real broker, with the test playing central (scripted)."""

from __future__ import annotations

import threading
import time

import pytest
from edge_support import ScriptedCentral, device_settings
from gpiozero import Button
from gpiozero.pins.mock import MockFactory
from helpers import wait_until

from edge.runtime import Device, DeviceRuntime
from nextup.contract import Command, DeviceConfig, DeviceStatus
from nextup.settings import SettingsError, load


@pytest.fixture
def scripted(broker):
    """The test playing central through the real broker, to script what central says and when."""
    c = ScriptedCentral(broker)
    yield c
    c.close()


def statuses(scripted, topic):
    return DeviceStatus.parse(scripted.expect(topic).payload)


def test_device_is_online_while_connected_and_offline_after_close(broker, scripted):
    settings = device_settings(broker, "point-1", "point")
    scripted.subscribe(scripted.topics.device_status("point-1"))
    with DeviceRuntime(settings, kind="point") as runtime:
        assert runtime.wait_connected(5)
        status = statuses(scripted, scripted.topics.device_status("point-1"))
        assert (status.online, status.kind) == (True, "point")
    status = statuses(scripted, scripted.topics.device_status("point-1"))
    assert status.online is False


def test_retained_status_tells_a_late_subscriber_the_device_is_offline(broker, scripted):
    settings = device_settings(broker, "kiosk-1", "kiosk")
    runtime = DeviceRuntime(settings, kind="kiosk").start()
    assert runtime.wait_connected(5)
    runtime.close()
    runtime.close()  # idempotent
    scripted.subscribe(scripted.topics.device_status("kiosk-1"))
    message = scripted.expect(scripted.topics.device_status("kiosk-1"))
    assert message.retain and DeviceStatus.parse(message.payload).online is False


def test_device_learns_its_config_from_central(broker, scripted):
    scripted.publish(scripted.topics.device_config("point-2"), DeviceConfig("point", point=2, language="de"),
                    retain=True)
    settings = device_settings(broker, "point-2", "point")
    seen = []
    got = threading.Event()
    with DeviceRuntime(settings, kind="point") as runtime:
        runtime.on_config(lambda c: (seen.append(c), got.set()))
        assert got.wait(5)
        assert seen[-1] == DeviceConfig("point", point=2, language="de")
        assert runtime.language == "de"
        got.clear()
        config = DeviceConfig("point", point=3)
        scripted.publish(scripted.topics.device_config("point-2"), config, retain=True)
        assert got.wait(5)
        assert runtime.config.point == 3


def test_sim_press_presses_the_named_mock_button(broker, scripted):
    settings = device_settings(broker, "point-3", "point")
    pressed = threading.Event()
    with DeviceRuntime(settings, kind="point", sim=True) as runtime:
        button = Button(17, pin_factory=runtime.pin_factory)
        button.when_pressed = pressed.set
        runtime.add_button("next", button)
        assert runtime.wait_ready(5)
        assert runtime.subscribed(runtime.topics.sim_press("point-3"))
        scripted.publish(scripted.topics.sim_press("point-3"), b"next")
        assert pressed.wait(5)
        assert not button.is_pressed  # released again
        button.close()


def test_publish_while_the_broker_is_down_goes_out_once_after_restart(broker, scripted):
    settings = device_settings(broker, "point-4", "point")
    topic = scripted.topics.command("point-4")
    scripted.subscribe(topic)
    with DeviceRuntime(settings, kind="point", reconnect_max_s=0.5) as runtime:
        assert runtime.wait_connected(5)
        broker.stop()
        wait_until(lambda: not runtime.connected, what="the device to notice the broker is gone")
        runtime.publish(topic, Command("c-1", "next"), expiry_s=60)
        broker.start()
        message = scripted.expect(topic)
        assert Command.parse(message.payload) == Command("c-1", "next")
        assert 0 < message.properties.MessageExpiryInterval <= 60
        runtime.publish(topic, Command("c-2", "served"))
        assert Command.parse(scripted.expect(topic).payload).command_id == "c-2"  # and no second c-1


def test_message_whose_expiry_ran_out_offline_is_never_sent(broker, scripted):
    settings = device_settings(broker, "kiosk-2", "kiosk")
    topic = scripted.topics.ticket_request("kiosk-2")
    scripted.subscribe(topic)
    with DeviceRuntime(settings, kind="kiosk", reconnect_max_s=0.5) as runtime:
        assert runtime.wait_connected(5)
        broker.stop()
        wait_until(lambda: not runtime.connected, what="the device to notice the broker is gone")
        runtime.publish(topic, b'{"request_id":"late","service":"cash"}', expiry_s=0.2)
        time.sleep(0.3)  # let the expiry run out while the broker is away
        runtime.publish(topic, b'{"request_id":"fresh","service":"cash"}', expiry_s=30)
        broker.start()
        message = scripted.expect(topic)
        assert b"fresh" in message.payload  # the late one never came before it, nor will after


def test_device_subclass_works_in_a_with_block_and_closes_its_hardware_once(broker):
    settings = device_settings(broker, "display-1", "display")
    closed = []

    class Screen(Device):
        kind = "display"

        def setup(self):
            self.led = Button(4, pin_factory=self.pin_factory)

        def teardown(self):
            closed.append(True)
            self.led.close()

    with Screen(settings, pin_factory=MockFactory()) as screen:
        assert screen.runtime.wait_connected(5)
    screen.close()
    assert closed == [True] and screen.closed


def test_settings_come_from_the_config_file_and_the_environment_wins(tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text('device_id = "kiosk-9"\nsite = "north"\nlanguage = "fr"\n[buttons]\n17 = "cash"\n')
    settings = load(config, env={"NEXTUP_MQTT_URL": "mqtts://kiosk-9:secret@broker.example:8883"})
    runtime = DeviceRuntime(settings, kind="kiosk")
    assert runtime.topics.ticket_request("kiosk-9") == "nextup/north/device/kiosk-9/ticket/request"
    assert runtime.extra["buttons"] == {"17": "cash"}
    assert runtime.language == "fr"
    assert settings.mqtt.tls and settings.mqtt.port == 8883


def test_a_device_without_an_id_is_a_clear_error():
    with pytest.raises(SettingsError, match="NEXTUP_DEVICE_ID"):
        DeviceRuntime(load(env={}), kind="kiosk")
    with pytest.raises(SettingsError, match="kind"):
        DeviceRuntime(load(env={"NEXTUP_DEVICE_ID": "x"}), kind="toaster")


def test_a_device_connects_over_tls_to_a_broker_it_can_verify(tmp_path, make_broker):
    from test_broker_security import make_ca_and_server_cert

    ca, server = make_ca_and_server_cert(tmp_path / "pki")
    broker = make_broker(tls=server)
    broker.add_device("point-7", "point")
    config = tmp_path / "point.toml"
    config.write_text(f'mqtt_ca = "{ca}"\n')
    url = broker.url("point-7", tls=True)
    settings = load(config, env={"NEXTUP_DEVICE_ID": "point-7", "NEXTUP_MQTT_URL": url})
    assert settings.mqtt.tls
    with DeviceRuntime(settings, kind="point") as runtime:
        assert runtime.wait_ready(5)
        assert runtime.subscribed(runtime.topics.device_config("point-7"))
