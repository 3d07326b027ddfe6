"""The console's home: the dashboard for managers (and readers), "my work" for operators who decide cases."""

from __future__ import annotations

import csv
from typing import Any

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.figures import BUCKET_LABELS, FIGURE_LABELS, key_label
from accounts.models import Case, CaseStatus, RuleCode
from accounts.selectors.queue import sla_states
from riskops.core.formats import money, sla
from riskops.core.http import operator_required
from riskops.core.roles import DECIDE_CASE, VIEW_OPERATOR_FIGURES
from riskops.dashboard import selectors
from riskops.dashboard.forms import DashboardForm

MY_WORK_ROWS = 50


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Managers (and operators who only read) start on the dashboard; analysts and reviewers keep the queue, whose
    head shows their own work (`my_work`)."""
    user = request.user
    if user.is_authenticated and (user.has_perm(VIEW_OPERATOR_FIGURES) or not user.has_perm(DECIDE_CASE)):
        return redirect("riskops:dashboard")
    return redirect("accounts:queue")


@operator_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    form = DashboardForm(request.GET)
    if not form.is_valid():
        return render(request, "riskops/dashboard.html", {"form": form, "board": None}, status=400)
    start, end = form.days()
    board = selectors.dashboard(
        start, end, user_id=request.user.pk, operator_figures=request.user.has_perm(VIEW_OPERATOR_FIGURES)
    )
    charts = {name: _worded(name, chart) for name, chart in board.charts.items()}
    rates = [_rate_row(r, start, end) for r in board.rates]
    tiles = {t.label: t for t in board.tiles}
    chart = request.GET.get("csv")
    if chart:
        return _csv(chart, charts, board)
    return render(
        request,
        "riskops/dashboard.html",
        {
            "form": form,
            "board": board,
            "tiles": tiles,
            "exposure_frozen": money(tiles["exposure_frozen"].value),
            "charts": charts,
            "tables": {name: _table(chart) for name, chart in charts.items()},
            "rates": rates,
            "chart_data": {**{name: _for_script(chart) for name, chart in charts.items()}, "overturn": rates},
            "compliance_pct": round(100 * charts["appeals"]["compliance"], 1) if charts["appeals"]["decided"] else None,
            "query": f"start={start}&end={end}",
        },
    )


def _series_label(chart: str, name: str) -> str:
    figure, _sep, key = name.partition(":")
    if chart == "appeals":
        return {
            "appeal_received": _("appeals received"),
            "appeal_decided:in_sla": _("decided within the SLA"),
            "appeal_decided:late": _("decided after the SLA"),
        }[name]
    if chart == "stock":
        return _("lines frozen")
    if chart == "tiers":
        return _("open cases")
    if key:
        return key_label(figure, key)
    return str(FIGURE_LABELS.get(figure, figure))


def _worded(name: str, chart: dict[str, Any]) -> dict[str, Any]:
    """A chart with the words of its series and of its categories, in the page's language."""
    series = [{**s, "label": s.get("label") or _series_label(name, s["name"])} for s in chart["series"]]
    if name == "freezes":
        series = [s for s in series if any(s["y"])] or series[:1]
    out = {**chart, "series": series, "labels": chart["x"]}
    if name == "decision_time":
        out["labels"] = [str(BUCKET_LABELS[k]) for k in chart["x"]]
    return out


def _table(chart: dict[str, Any]) -> SafeString:
    """A chart's numbers as its table's rows, HTML built here (a template loop, or format_html per cell, costs more
    than the rest of the page): a row per category, a cell per series, each number linking to what it counts.
    Labels and links are escaped; the numbers are ints."""
    rows = []
    series = [(s["y"], [escape(link) for link in s["links"]]) for s in chart["series"]]
    for i, label in enumerate(chart["labels"]):
        cells = "".join(
            f'<td><a href="{links[i]}">{int(y[i])}</a></td>' if y[i] else "<td>0</td>" for y, links in series
        )
        rows.append(f"<tr><th>{escape(label)}</th>{cells}</tr>")
    return mark_safe("".join(rows))  # noqa: S308  # nosec B308 B703 - labels and links escaped, numbers ints


def _for_script(chart: dict[str, Any]) -> dict[str, Any]:
    """A chart as the page's script reads it: a series of days carries its link with "{day}" for the day (the
    same link for every point but the day) rather than a link per point."""
    series = []
    for s in chart["series"]:
        pattern = s["links"][0].replace(chart["x"][0], "{day}") if s["links"] else ""
        if "{day}" in pattern and [pattern.replace("{day}", x) for x in chart["x"]] == s["links"]:
            s = {**{k: v for k, v in s.items() if k != "links"}, "pattern": pattern}
        series.append(s)
    return {**chart, "series": series}


def _rate_row(rate: selectors.Rate, start: Any, end: Any) -> dict[str, Any]:
    key = f"{rate.code}:{rate.version}"
    return {
        "rule": str(RuleCode(rate.code).label) if rate.code in RuleCode.values else rate.code,
        "code": rate.code,
        "version": rate.version,
        "n": rate.n,
        "k": rate.k,
        "rate": rate.rate,
        "low": rate.low,
        "high": rate.high,
        "n_link": selectors.figure_link("adverse", start, end, key),
        "k_link": selectors.figure_link("overturned", start, end, key),
    }


def _csv(chart: str, charts: dict[str, dict[str, Any]], board: selectors.Dashboard) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="dashboard-{chart}-{board.start}-{board.end}.csv"'
    response.write("\ufeff")  # spreadsheets read the file as UTF-8 (Chinese labels)
    out = csv.writer(response)
    if chart == "overturn":
        out.writerow(
            ["rule", "ruleset_version", "frozen_or_cut", "overturned", "rate", "wilson95_low", "wilson95_high"]
        )
        for r in board.rates:
            out.writerow([r.code, r.version, r.n, r.k, _num(r.rate), _num(r.low), _num(r.high)])
        return response
    if chart not in charts:
        return HttpResponse(
            _("No such chart: %(chart)s") % {"chart": chart[:40]}, status=400, content_type="text/plain"
        )
    data = charts[chart]
    out.writerow(["x", *(s["label"] for s in data["series"])])
    for i, x in enumerate(data["labels"]):
        out.writerow([x, *(s["y"][i] for s in data["series"])])
    return response


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@operator_required
@require_GET
def my_work(request: HttpRequest) -> HttpResponse:
    """An operator's own cases (unresolved, assigned to them, the closest deadline first) and today's throughput;
    for htmx (the queue's head) only the figures, as a strip."""
    today = timezone.localdate()
    uid = request.user.pk
    mine = Case.objects.exclude(status=CaseStatus.RESOLVED).filter(assignee_id=uid)
    now = timezone.now()
    states = sla_states(now)  # the queue's own SLA filter, which the links below open
    counts = mine.aggregate(
        open=Count("pk"),
        breached=Count("pk", filter=states["breached"]),
        due_soon=Count("pk", filter=states["due_soon"]),
    )
    done = selectors.counts_direct(today, today, ["decisions"]).get(("decisions", today, str(uid)), 0)
    links = {
        "open": selectors.queue_link(assignee="me"),
        "breached": selectors.queue_link(assignee="me", sla="breached"),
        "due_soon": selectors.queue_link(assignee="me", sla="due_soon"),
        "done": selectors.figure_link("decisions", today, today, str(uid)),
    }
    if getattr(request, "htmx", False):
        nearest = mine.filter(sla_due_at__gte=now).order_by("sla_due_at").values_list("sla_due_at", flat=True).first()
        return render(
            request,
            "riskops/_my_work_strip.html",
            {"counts": counts, "done_today": done, "links": links, "next_due": sla(nearest) if nearest else ""},
        )
    rows = [
        {
            "id": c.pk,
            "account_no": c.line.account_no,
            "status": c.get_status_display(),
            "exposure": money(c.exposure),
            "sla": sla(c.sla_due_at),
            "breached": c.sla_due_at is not None and c.sla_due_at < now,
            "codes": c.signal_codes,
        }
        for c in mine.select_related("line").order_by("sla_due_at", "id")[:MY_WORK_ROWS]
    ]
    return render(
        request,
        "riskops/my_work.html",
        {
            "counts": counts,
            "rows": rows,
            "more": counts["open"] > len(rows),
            "done_today": done,
            "done_link": links["done"],
            "links": links,
        },
    )
