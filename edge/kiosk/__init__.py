from edge.kiosk.app import Kiosk

__all__ = ["Kiosk"]
