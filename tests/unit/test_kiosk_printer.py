"""python-escpos gets its printer database from a pickle the kiosk made with json, not from PyYAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("escpos")

# A process of its own: escpos reads its database once, when first imported.
OPENED = """
import json, os, sys, yaml
from pathlib import Path
from edge.kiosk.printer import open_printer
open_printer("dummy")
import escpos.capabilities as caps
parsed = yaml.safe_load(Path(caps.capabilities_path).read_text())
folder = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR", "")
print(json.dumps({"full_load": caps.full_load, "same": caps.CAPABILITIES == parsed, "folder": folder}))
"""


def opened(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", OPENED], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def test_escpos_loads_the_database_from_a_pickle_of_its_own_folder_removed_at_exit() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCPOS_")}
    got = opened(env)
    assert got["full_load"] is False, "escpos parsed the database with PyYAML"
    assert got["same"], "the pickle holds what PyYAML would have read"
    assert not Path(str(got["folder"])).exists(), "the kiosk's folder is gone after it"


def test_a_configured_folder_is_filled_once_and_kept(tmp_path: Path) -> None:
    env = {**os.environ, "ESCPOS_CAPABILITIES_PICKLE_DIR": str(tmp_path)}
    env.pop("ESCPOS_CAPABILITIES_FILE", None)
    first = opened(env)
    assert first["full_load"] is False and first["same"] and first["folder"] == str(tmp_path)
    (pickled,) = tmp_path.iterdir()
    made = pickled.stat().st_mtime_ns
    assert opened(env)["full_load"] is False
    assert pickled.stat().st_mtime_ns == made, "a fresh pickle is read, not written again"
