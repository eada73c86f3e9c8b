"""What other tools need from the device registry."""

from __future__ import annotations

from sqlalchemy import select

from central.store import Store
from central.store.migrate import check_schema
from central.store.models import DeviceRow
from nextup.settings import Settings


def registered_devices(settings: Settings) -> list[tuple[str, str]]:
    """(device id, kind) of every device in the site's registry."""
    check_schema(settings.database)
    store = Store(settings.database)
    try:
        with store.read() as s:
            return [(d.id, d.kind) for d in s.scalars(select(DeviceRow).order_by(DeviceRow.id))]
    finally:
        store.close()
