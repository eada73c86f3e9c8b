"""Settings: the MQTT URL, and a TOML file with the environment winning over it."""

from __future__ import annotations

import pytest

from central.domain.errors import NextupError
from nextup.settings import DEFAULT_MQTT_URL, MqttUrl, Settings, SettingsError, load


def test_a_plain_mqtt_url_defaults_to_port_1883_without_tls():
    assert MqttUrl.parse("mqtt://broker.local") == MqttUrl(host="broker.local", port=1883)


def test_an_mqtts_url_defaults_to_port_8883_with_tls():
    assert MqttUrl.parse("mqtts://broker.local") == MqttUrl(host="broker.local", port=8883, tls=True)


def test_an_explicit_port_wins_over_the_default():
    assert MqttUrl.parse("mqtts://broker.local:9000").port == 9000
    assert MqttUrl.parse("mqtt://127.0.0.1:1884").port == 1884


def test_user_and_password_are_unquoted():
    url = MqttUrl.parse("mqtt://kiosk%2D1:p%40ss%3Aw%2Ford@broker.local:1883")
    assert (url.username, url.password) == ("kiosk-1", "p@ss:w/ord")


def test_a_url_without_credentials_has_none():
    url = MqttUrl.parse(DEFAULT_MQTT_URL)
    assert (url.host, url.port, url.username, url.password, url.tls) == ("127.0.0.1", 1883, None, None, False)


def test_an_ipv6_host_is_read_without_brackets():
    assert MqttUrl.parse("mqtt://[::1]:1883").host == "::1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://broker.local", "must start with mqtt:// or mqtts://"),
        ("tcp://broker.local:1883", "must start with mqtt://"),
        ("broker.local:1883", "must start with mqtt://"),
        ("", "must start with mqtt://"),
        ("mqtt://", "has no host"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://broker.local:99999", "bad port"),
        ("mqtt://broker.local:port", "bad port"),
        ("mqtt://broker.local:0", "bad port"),
    ],
)
def test_a_bad_mqtt_url_is_refused_with_the_reason(url, reason):
    with pytest.raises(SettingsError, match=reason) as caught:
        MqttUrl.parse(url)
    assert isinstance(caught.value, NextupError) and isinstance(caught.value, ValueError)


def test_the_repr_of_an_mqtt_url_hides_the_password():
    url = MqttUrl.parse("mqtt://central:s3cret-pw@broker.local")
    assert "s3cret-pw" not in repr(url)
    assert "s3cret-pw" not in str(url)
    assert "central" in repr(url)


def test_an_error_about_a_url_does_not_print_its_password():
    with pytest.raises(SettingsError) as caught:
        MqttUrl.parse("mqtt://central:s3cret-pw@broker.local:nope")
    assert "s3cret-pw" not in str(caught.value)


def test_the_repr_of_settings_hides_the_passwords_in_its_urls():
    settings = load(
        env={
            "NEXTUP_MQTT_URL": "mqtt://central:s3cret-pw@broker.local",
            "NEXTUP_DATABASE_URL": "postgresql://nextup:db-pw@db.local/nextup",
        }
    )
    shown = repr(settings)
    assert "s3cret-pw" not in shown and "db-pw" not in shown
    assert "broker.local" in shown and "db.local" in shown
    assert settings.mqtt.password == "s3cret-pw", "hidden from view, not lost"


def test_without_file_or_environment_the_defaults_apply():
    settings = load(env={})
    assert settings == Settings()
    assert (settings.site, settings.mqtt_url, settings.device_id) == ("main", DEFAULT_MQTT_URL, None)


def test_the_default_database_is_a_sqlite_file_in_the_instance_folder(tmp_path):
    settings = load(env={"NEXTUP_INSTANCE": str(tmp_path)})
    assert settings.database == f"sqlite:///{tmp_path.resolve() / 'nextup.sqlite3'}"
    assert load(env={"NEXTUP_DATABASE_URL": "postgresql://db/x"}).database == "postgresql://db/x"


def write_config(tmp_path, text: str):
    path = tmp_path / "nextup.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_sets_the_settings_and_keeps_other_keys_as_extra(tmp_path):
    config = write_config(
        tmp_path,
        """
site = "north"
mqtt_url = "mqtts://kiosk-1:pw@broker.local"
device_id = "kiosk-1"
printer = "dummy"

[pins]
cash = 17
""",
    )
    settings = load(config, env={})
    assert (settings.site, settings.device_id, settings.printer) == ("north", "kiosk-1", "dummy")
    assert settings.mqtt == MqttUrl("broker.local", 8883, "kiosk-1", "pw", tls=True)
    assert settings.extra == {"pins": {"cash": 17}}


def test_the_environment_wins_over_the_file(tmp_path):
    config = write_config(tmp_path, 'site = "north"\ndevice_id = "kiosk-1"\nprinter = "dummy"\n')
    settings = load(config, env={"NEXTUP_SITE": "south", "NEXTUP_PRINTER": "tcp:printer.local:9100"})
    assert settings.site == "south"
    assert settings.printer == "tcp:printer.local:9100"
    assert settings.device_id == "kiosk-1", "what the environment does not set comes from the file"


def test_an_empty_environment_variable_does_not_erase_the_file(tmp_path):
    config = write_config(tmp_path, 'site = "north"\n')
    assert load(config, env={"NEXTUP_SITE": ""}).site == "north"


def test_load_reads_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("NEXTUP_SITE", "from-env")
    monkeypatch.setenv("NEXTUP_DEVICE_ID", "point-7")
    settings = load()
    assert (settings.site, settings.device_id) == ("from-env", "point-7")


def test_a_bad_mqtt_url_fails_at_load_time():
    with pytest.raises(SettingsError, match="must start with mqtt://"):
        load(env={"NEXTUP_MQTT_URL": "http://broker.local"})


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="cannot read .*missing.toml"):
        load(tmp_path / "missing.toml", env={})


def test_a_config_file_that_is_not_toml_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="nextup.toml"):
        load(write_config(tmp_path, "site = \n"), env={})


def test_a_setting_of_the_wrong_type_in_the_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="site must be a string, not int"):
        load(write_config(tmp_path, "site = 5\n"), env={})
    with pytest.raises(SettingsError, match="mqtt_url must be a string"):
        load(write_config(tmp_path, "[mqtt_url]\nhost = 'x'\n"), env={})
