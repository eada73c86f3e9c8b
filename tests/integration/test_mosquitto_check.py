"""The Ansible role's mosquitto-check: it runs a configuration in a throwaway broker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker.mosquitto import RunningBroker

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "ansible" / "roles" / "mosquitto" / "files" / "mosquitto-check"

# A broker whose start-up lines all reach the pipe in one write, before the check
# reads any: what a loaded machine does when the check is scheduled late.
ALL_AT_ONCE = """#!/bin/sh
out=$(mktemp)
{mosquitto} "$@" >"$out" 2>&1 &
pid=$!
trap 'kill $pid; wait $pid; rm -f "$out"; exit 0' TERM
until grep -q " running" "$out"; do sleep 0.05; done
cat "$out"
wait $pid
"""


def _check(mosquitto: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), mosquitto, str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def site_config(tmp_path: Path) -> Path:
    """The project's broker configuration for one site, written but not started."""
    return RunningBroker(tmp_path / "broker").config.config_file


def test_the_projects_configuration_passes(site_config: Path) -> None:
    result = _check(shutil.which("mosquitto") or "mosquitto", site_config)
    assert result.returncode == 0, result.stderr


def test_a_configuration_mosquitto_refuses_fails_with_its_error(site_config: Path) -> None:
    site_config.write_text(site_config.read_text() + "\nno_such_option 1\n")
    result = _check(shutil.which("mosquitto") or "mosquitto", site_config)
    assert result.returncode == 1
    assert "does not start with this configuration (it exited with" in result.stderr
    assert "no_such_option" in result.stderr


def test_start_up_lines_that_arrive_in_one_write_pass(site_config: Path, tmp_path: Path) -> None:
    wrapper = tmp_path / "mosquitto-all-at-once"
    wrapper.write_text(ALL_AT_ONCE.format(mosquitto=shutil.which("mosquitto")))
    wrapper.chmod(0o755)
    result = _check(str(wrapper), site_config)
    assert result.returncode == 0, result.stderr
