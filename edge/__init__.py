"""Edge programs: the ticket kiosk, the point unit and the hall display.

Each is a thin adapter over the shared device runtime (``edge.runtime``).
Nothing here touches GPIO, USB or I2C at import time.
"""
