"""The kiosk's thermal printer, chosen by URL, and what state it is in.

``file:/path`` (raw ESC/POS bytes appended), ``usb:VID:PID`` (hex ids),
``tcp:host:port`` (a network printer, port 9100 by default) and ``dummy``
(bytes kept in memory).  python-escpos is imported only when a printer is
opened, so importing this module touches no USB.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import os
import pickle
import platform
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from nextup.settings import SettingsError

log = logging.getLogger(__name__)

NETWORK_TIMEOUT_S = 5.0
DEFAULT_TCP_PORT = 9100

OK = "ok"
PAPER_OUT = "paper_out"
PAPER_LOW = "paper_low"
OFFLINE = "offline"


_escpos_lock = threading.Lock()


def _before_escpos() -> None:
    """Leaves python-escpos a pickle of its printer database, made with json, before it is imported.

    ``escpos.capabilities`` reads its printer database (``capabilities.json``,
    96 KB) with PyYAML at import unless it finds a newer pickle of it in
    ``ESCPOS_CAPABILITIES_PICKLE_DIR``, which, unset, is a new ``mkdtemp()``
    folder each start: it never does.  Parsed by PyYAML, the database costs
    the kiosk 1.2 MB more than from the pickle (against a 40 MB budget).  The
    file is JSON, which ``json`` reads in C into the same objects.  Unset, the
    folder is one of the kiosk's own, removed at exit.  A database of one's
    own (``ESCPOS_CAPABILITIES_FILE``) is left to python-escpos.
    """
    with _escpos_lock:
        if "escpos.capabilities" in sys.modules or os.environ.get("ESCPOS_CAPABILITIES_FILE"):
            return
        spec = importlib.util.find_spec("escpos")
        if spec is None or not spec.submodule_search_locations:
            return
        source = Path(list(spec.submodule_search_locations)[0]) / "capabilities.json"
        folder = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR")
        if not folder:
            folder = tempfile.mkdtemp(prefix="nextup-escpos-")
            atexit.register(shutil.rmtree, folder, True)
            os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = folder
        # the name and the freshness test python-escpos uses
        pickled = Path(folder) / f"{platform.python_version()}.capabilities.pickle"
        try:
            if pickled.exists() and pickled.stat().st_mtime >= source.stat().st_mtime:
                return
            database = json.loads(source.read_bytes())
            tmp = pickled.with_name(f".{pickled.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as out:
                pickle.dump(database, out, protocol=2)
            os.replace(tmp, pickled)
        except (OSError, ValueError) as exc:
            log.info("python-escpos reads its printer database itself: %s", exc)


def open_printer(url: str) -> Any:
    """A python-escpos printer for ``url``; ``SettingsError`` when the URL makes no sense.

    The device itself opens on first use, so a printer that is off now is
    reported when a ticket is printed, not here.
    """
    scheme, _, rest = url.partition(":")
    if scheme == "dummy" and not rest:
        _before_escpos()
        from escpos.printer import Dummy

        return Dummy()
    if scheme == "file" and rest:
        return _append_file_printer(rest[2:] if rest.startswith("//") else rest)
    if scheme == "usb":
        vid, _, pid = rest.partition(":")
        try:
            vendor, product = int(vid, 16), int(pid, 16)
        except ValueError:
            raise SettingsError(f"printer URL {url!r}: expected usb:VID:PID in hex (usb:04b8:0202)") from None
        _before_escpos()
        from escpos.printer import Usb

        return Usb(vendor, product)
    if scheme == "tcp" and rest:
        host, _, port = rest.lstrip("/").rpartition(":")
        if not host:
            host, port = rest.lstrip("/"), str(DEFAULT_TCP_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"printer URL {url!r}: bad TCP port")
        _before_escpos()
        from escpos.printer import Network

        return Network(host, int(port), timeout=NETWORK_TIMEOUT_S)
    raise SettingsError(
        f"printer URL {url!r} is not one of file:/path, usb:VID:PID, tcp:host:port or dummy"
    )


def _append_file_printer(path: str) -> Any:
    _before_escpos()
    from escpos.printer import File

    class AppendFile(File):  # type: ignore[misc]
        """escpos's File printer truncates; a kiosk's log of tickets must not."""

        def open(self, raise_not_found: bool = True) -> None:
            from escpos.exceptions import DeviceNotFoundError

            if self._device:
                self.close()
            try:
                self.device = open(self.devfile, "ab")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                self.device = None
                if raise_not_found:
                    raise DeviceNotFoundError(f"cannot open {self.devfile}: {exc.strerror}") from None

    return AppendFile(path)


def can_report_status(printer: Any) -> bool:
    """Whether ``printer`` can answer status queries (it reads back, unlike a file or the dummy)."""
    _before_escpos()
    from escpos.escpos import Escpos

    return type(printer)._read is not Escpos._read


def printer_state(printer: Any) -> str | None:
    """``ok``, ``paper_low``, ``paper_out`` or ``offline`` as the printer says; None when it cannot say."""
    if not can_report_status(printer):
        return None
    try:
        if not printer.is_online():
            return OFFLINE
        paper = printer.paper_status()
    except NotImplementedError:
        return None
    except Exception as exc:  # noqa: BLE001 - whatever the transport raises, the printer is not there
        log.warning("printer does not answer: %s", exc)
        forget_connection(printer)
        return OFFLINE
    if paper == 0:
        return PAPER_OUT
    if paper == 1:
        return PAPER_LOW
    return OK


def forget_connection(printer: Any) -> None:
    """Close ``printer`` so that the next use opens it again (after a cable or power cut)."""
    with contextlib.suppress(Exception):
        printer.close()
    # python-escpos reopens on next use only when the device is False, not None (a failed open).
    with contextlib.suppress(Exception):
        printer.device = False
