"""The virtual hall of ``nextup demo`` (``/demo/hall``): every sim device of the site on one page.

Registered only when the app's config says ``DEMO``.  The page reads the live
device objects through the hall that ``nextup demo`` puts in
``app.extensions["nextup.demo"]`` (see ``nextup.demo.DemoHall``): the kiosk's
buttons, LEDs and printed tickets, each point unit's buttons, LEDs and LCD
text, and the display's last frame.  A click presses the mock button the way
any outside tester does, through ``sim/<device_id>/press``, so what happens
next is what the hardware would do.
"""

from __future__ import annotations

from typing import Any, Protocol

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for

blueprint = Blueprint("demo", __name__)


class Hall(Protocol):
    """What this blueprint needs of the demo."""

    def state(self) -> dict[str, Any]:
        """Every device as plain data (JSON)."""

    def buttons(self, device_id: str) -> list[str] | None:
        """The button names of ``device_id``; None for a device the hall does not have."""

    def press(self, device_id: str, button: str) -> None:
        """Press the mock button ``button`` of ``device_id`` through its sim topic."""

    def ticket_png(self, ticket_id: str) -> bytes | None:
        """A printed ticket rendered as PNG; None when the kiosk no longer keeps it."""

    def frame_path(self, device_id: str) -> Any:
        """The path of the display's last frame (PNG), None if it has drawn none yet."""


def hall() -> Hall:
    found = current_app.extensions.get("nextup.demo")
    if found is None:
        abort(503, "the demo's devices are not running")
    return found


@blueprint.after_request
def _no_store(response: Any) -> Any:
    # Everything here is live: a cached LED or frame would show a hall that no longer is.
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/")
def index() -> Any:
    return redirect(url_for("demo.hall_page"))


@blueprint.get("/hall")
def hall_page() -> Any:
    """The page: kiosk, display and point units, refreshed every second from ``/demo/hall.json``."""
    return render_template("demo/hall.html", hall=hall().state())


@blueprint.get("/hall.json")
def hall_json() -> Any:
    return jsonify(hall().state())


@blueprint.post("/press")
def press() -> Any:
    """Press ``button`` of ``device`` (form fields); JSON answer for scripts, else back to the page."""
    device = (request.form.get("device") or "").strip()
    button = (request.form.get("button") or "").strip()
    wants_json = request.accept_mimetypes.best == "application/json"
    names = hall().buttons(device)
    if names is None:
        error = f"there is no device {device!r} in this hall"
    elif button not in names:
        error = f"{device} has no button {button!r}; it has {', '.join(names)}"
    else:
        hall().press(device, button)
        if wants_json:
            return jsonify({"pressed": button, "device": device}), 202
        return redirect(url_for("demo.hall_page"), 303)
    if wants_json:
        return jsonify({"error": error}), 400
    abort(400, error)


@blueprint.get("/ticket/<ticket_id>.png")
def ticket_png(ticket_id: str) -> Any:
    """A printed ticket as the paper would look."""
    png = hall().ticket_png(ticket_id)
    if png is None:
        abort(404, "the kiosk keeps only its last tickets")
    return current_app.response_class(png, mimetype="image/png")


@blueprint.get("/display/<device_id>.png")
def display_png(device_id: str) -> Any:
    """The hall display's current frame."""
    path = hall().frame_path(device_id)
    if path is None:
        abort(404, "that display has drawn no frame yet")
    # Read it whole: the display replaces the file after each redraw.
    with open(path, "rb") as f:
        data = f.read()
    return current_app.response_class(data, mimetype="image/png")

