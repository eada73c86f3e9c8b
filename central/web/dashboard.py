"""The admin's live dashboard, staffing advice and statistics (/admin/dashboard, /admin/stats).

The dashboard's live part is one HTML fragment.  The page subscribes to
``/admin/dashboard/events`` (server-sent events from ``central.web.live``): each
committed change of the queue re-renders the fragment and sends it, so the
page follows within a moment of the change.  When the stream is refused (too
many open streams) or breaks for good, the page polls
``/admin/dashboard/live`` every second instead.  Waiting times tick in the
browser between updates.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from central import stats
from central.coordinator import Coordinator

from . import live, svgchart
from .auth import ADMIN, add_staff_nav, role_required

blueprint = Blueprint("dashboard", __name__)
blueprint.record_once(lambda state: (add_staff_nav(state.app, "dashboard.index", "Dashboard"),
                                     add_staff_nav(state.app, "dashboard.stats", "Statistics")))

DEFAULT_DAYS = 7


class StaffingForm(FlaskForm):
    target_s = IntegerField("Target wait (seconds)", validators=[
        InputRequired("A number of seconds is required."),
        NumberRange(min=1, max=24 * 3600, message="Between 1 second and 24 hours (86400)."),
    ], description="e.g. 300 for five minutes.")
    percent = IntegerField("Share of clients served within it (%)", validators=[
        InputRequired("A percentage is required."),
        NumberRange(min=1, max=99, message="Between 1 and 99: no queue promises 100 %%."),
    ])


def _coordinator() -> Coordinator:
    return current_app.extensions["nextup.coordinator"]


@blueprint.context_processor
def _formats() -> dict[str, Any]:
    return {"mss": svgchart.minutes}


@blueprint.after_request
def _private(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "private, no-cache")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


# --- the live dashboard ---------------------------------------------------------------------


def _live_context() -> dict[str, Any]:
    coordinator = _coordinator()
    now = stats.live(coordinator.store, coordinator.clock())
    advice = stats.staffing_advice(now)
    return {"now": now, "advice": advice, "advice_for": {a.key: a for a in advice.services},
            "local": lambda t: t.astimezone(now.tz)}


def _fragment() -> str:
    return render_template("dashboard/_live.html", **_live_context())


@blueprint.get("/dashboard")
@role_required(ADMIN)
def index() -> Any:
    context = _live_context()
    form = StaffingForm(data={"target_s": context["now"].target_s, "percent": context["now"].percent})
    return render_template("dashboard/index.html", form=form, **context)


@blueprint.get("/dashboard/live")
@role_required(ADMIN)
def live_fragment() -> Any:
    """The live part alone, for the page's polling fallback."""
    return _fragment()


@blueprint.get("/dashboard/events")
@role_required(ADMIN)
def events() -> Any:
    """The live part as server-sent events: once at once, then after each committed change."""

    def render(_messages: list[Any]) -> list[live.Event]:
        return [live.Event("dashboard", {"html": _fragment()})]

    return live.event_stream(render)


@blueprint.post("/dashboard/staffing")
@role_required(ADMIN)
def staffing() -> Any:
    """Set the waiting target the staffing advice aims at."""
    form = StaffingForm()
    if form.validate_on_submit():
        try:
            stats.set_staffing_target(_coordinator().store, form.target_s.data, form.percent.data)
        except (ValueError, LookupError) as exc:
            form.target_s.errors = [*form.target_s.errors, str(exc)]
        else:
            flash(f"Staffing advice now aims at {form.percent.data} % of waits under "
                  f"{svgchart.minutes(form.target_s.data)} (m:ss).", "success")
            return redirect(url_for("dashboard.index"))
    if form.csrf_token.errors:
        flash("The form had expired: please send it again.", "error")
    return render_template("dashboard/index.html", form=form, **_live_context()), 400


# --- statistics -----------------------------------------------------------------------------


def _range() -> tuple[date, date]:
    """The dates of ``?from=&to=`` (the site's local days); the last week when both are absent."""
    first_text, last_text = request.args.get("from"), request.args.get("to")
    if not first_text and not last_text:
        coordinator = _coordinator()
        last = stats.today(coordinator.store, coordinator.clock())
        return last - timedelta(days=DEFAULT_DAYS - 1), last
    return stats.parse_day(first_text, "start"), stats.parse_day(last_text, "end")


def _charts(report: stats.Report) -> dict[str, Any]:
    names = dict(report.services)
    hours = list(report.busy_hours)
    charts: dict[str, Any] = {
        "per_hour": svgchart.bar_chart(
            [f"{h:02d}" for h in hours],
            [(names[key], [report.per_hour[key][h] for h in hours]) for key, _ in report.services],
            title="Tickets per service and hour of the day", stacked=True),
    }
    if len(report.per_day) > 1:
        charts["per_day"] = svgchart.line_chart(
            [d.strftime("%d %b") for d, _ in report.per_day], [("Tickets", [n for _, n in report.per_day])],
            title="Tickets per day")
    for group, title in (("by_service", "service"), ("by_point", "point"), ("by_specialist", "specialist")):
        summaries: dict[str, stats.Summary] = getattr(report, group)
        labels = [names.get(key, key) for key in summaries] if group == "by_service" else list(summaries)
        if not summaries:
            continue
        charts[group] = svgchart.bar_chart(labels, [
            ("Average wait", [s.wait_avg_s for s in summaries.values()]),
            ("90th percentile wait", [s.wait_p90_s for s in summaries.values()]),
            ("Average service", [s.service_avg_s for s in summaries.values()]),
            ("90th percentile service", [s.service_p90_s for s in summaries.values()]),
        ], title=f"Waits and service times by {title} (m:ss)", fmt=svgchart.minutes,
            scale=svgchart.time_ceiling)
    return charts


@blueprint.get("/stats", endpoint="stats")
@role_required(ADMIN)
def stats_page() -> Any:
    try:
        first, last = _range()
        report = stats.report(_coordinator().store, first, last)
    except ValueError as exc:
        return render_template("dashboard/stats.html", error=str(exc), report=None,
                               first=request.args.get("from", ""), last=request.args.get("to", "")), 400
    return render_template("dashboard/stats.html", error=None, report=report, charts=_charts(report),
                           names=dict(report.services), first=first.isoformat(), last=last.isoformat())


@blueprint.get("/stats/tickets.csv")
@role_required(ADMIN)
def tickets_csv() -> Any:
    """Every ticket of the days ``from``..``to`` (the site's local dates, inclusive) as CSV."""
    try:
        first = stats.parse_day(request.args.get("from"), "start")
        last = stats.parse_day(request.args.get("to"), "end")
        pieces = stats.tickets_csv(_coordinator().store, first, last)
    except ValueError as exc:
        return Response(f"{exc}\n", status=400, mimetype="text/plain")
    filename = f"nextup-tickets-{first.isoformat()}-to-{last.isoformat()}.csv"
    return Response(pieces, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store",
    })

