"""The kiosk's thermal printer, chosen by URL, and what state it is in.

``file:/path`` (raw ESC/POS bytes appended), ``usb:VID:PID`` (hex ids),
``tcp:host:port`` (a network printer, port 9100 by default) and ``dummy``
(bytes kept in memory).  python-escpos is imported only when a printer is
opened, so importing this module touches no USB.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from nextup.settings import SettingsError

log = logging.getLogger(__name__)

NETWORK_TIMEOUT_S = 5.0
DEFAULT_TCP_PORT = 9100

OK = "ok"
PAPER_OUT = "paper_out"
PAPER_LOW = "paper_low"
OFFLINE = "offline"


def open_printer(url: str) -> Any:
    """A python-escpos printer for ``url``; ``SettingsError`` when the URL makes no sense.

    The device itself opens on first use, so a printer that is off now is
    reported when a ticket is printed, not here.
    """
    scheme, _, rest = url.partition(":")
    if scheme == "dummy" and not rest:
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
        from escpos.printer import Usb

        return Usb(vendor, product)
    if scheme == "tcp" and rest:
        host, _, port = rest.lstrip("/").rpartition(":")
        if not host:
            host, port = rest.lstrip("/"), str(DEFAULT_TCP_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"printer URL {url!r}: bad TCP port")
        from escpos.printer import Network

        return Network(host, int(port), timeout=NETWORK_TIMEOUT_S)
    raise SettingsError(
        f"printer URL {url!r} is not one of file:/path, usb:VID:PID, tcp:host:port or dummy"
    )


def _append_file_printer(path: str) -> Any:
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
