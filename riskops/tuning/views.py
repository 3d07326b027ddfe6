"""The rules page and a version's page: every operator reads them; risk managers draft changes
(accounts.services.rulesets)."""

from __future__ import annotations

import csv
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Backtest, RuleSet, Simulation, SimulationOutcome
from accounts.rule_params import ParamsInvalid
from accounts.selectors.rules import ruleset_diff, versions
from accounts.services.rulesets import (
    require_may_tune,
    rule_change,
    ruleset_discard,
    ruleset_draft,
    ruleset_shadow,
    ruleset_shadow_stop,
)
from riskops.core.errors import DomainError
from riskops.core.http import actor, domain_errors, operator_required
from riskops.core.roles import TUNE_RULES, may
from riskops.tuning import selectors
from riskops.tuning.forms import ActivateForm, BacktestForm, CompareForm, DraftForm, RuleForm, ShadowForm
from riskops.tuning.services import backtest_request, ruleset_activate, simulation_request


def _version(number: int) -> RuleSet:
    ruleset = RuleSet.objects.select_related("created_by", "activated_by", "based_on").filter(version=number).first()
    if ruleset is None:
        raise Http404(_("No such version"))
    return ruleset


def _version_url(ruleset: RuleSet) -> str:
    return reverse("riskops:ruleset", args=[ruleset.version])


@operator_required
@require_GET
def rules(request: HttpRequest) -> HttpResponse:
    active = RuleSet.objects.select_related("created_by", "activated_by").filter(is_active=True).first()
    start, rows = selectors.rule_rows(active) if active else (None, [])
    return render(
        request,
        "riskops/rules.html",
        {
            "active": active,
            "start": start,
            "rows": rows,
            "versions": versions(),
            "draft_form": DraftForm(initial={"source": active.version if active else None}),
            "may_tune": may(actor(request), TUNE_RULES),
            "days": selectors.DAYS,
            "shadow": selectors.shadow_running(),
        },
    )


def _ruleset_page(
    request: HttpRequest, ruleset: RuleSet, forms_by_code: dict[str, RuleForm] | None = None, status: int = 200
) -> HttpResponse:
    compare = CompareForm(request.GET or None)
    other = None
    if compare.is_valid():
        other = compare.cleaned_data["other"]
    elif not request.GET:
        other = ruleset.based_on or RuleSet.objects.filter(is_active=True).exclude(pk=ruleset.pk).first()
        compare = CompareForm(initial={"other": other.version if other else None})
    elif "other" in request.GET:
        status = 400
    _start, rows = selectors.rule_rows(ruleset)
    editable = ruleset.is_draft and may(actor(request), TUNE_RULES)
    forms_by_code = forms_by_code or {}
    for row in rows:
        row.form = (forms_by_code.get(row.rule.code) or RuleForm(rule=row.rule)) if editable else None
    return render(
        request,
        "riskops/ruleset.html",
        {
            "ruleset": ruleset,
            "rows": rows,
            "editable": editable,
            "compare": compare,
            "other": other,
            "diff": ruleset_diff(other, ruleset) if other else [],
            "days": selectors.DAYS,
            "may_tune": may(actor(request), TUNE_RULES),
            "simulations": ruleset.simulations.order_by("-pk")[:5],
            "backtests": ruleset.backtests.order_by("-pk")[:5],
            "shadow": selectors.shadow_summary(ruleset),
            "shadow_form": ShadowForm(),
            "backtest_form": BacktestForm(),
        },
        status=status,
    )


@operator_required
@require_GET
def ruleset(request: HttpRequest, version: int) -> HttpResponse:
    return _ruleset_page(request, _version(version))


@operator_required
@require_POST
@domain_errors(lambda request: reverse("riskops:rules"))
def draft_create(request: HttpRequest) -> HttpResponse:
    require_may_tune(actor(request))
    form = DraftForm(request.POST)
    if not form.is_valid():
        raise DomainError(" ".join(str(e) for errors in form.errors.values() for e in errors))
    draft = ruleset_draft(source=form.cleaned_data["source"], actor=actor(request), note=form.cleaned_data["note"])
    messages.success(
        request,
        _("Draft version %(v)s holds a copy of version %(source)s: change its rules below.")
        % {"v": draft.version, "source": form.cleaned_data["source"].version},
    )
    return redirect(_version_url(draft))


@operator_required
@require_POST
@domain_errors(lambda request, version, code: reverse("riskops:ruleset", args=[version]))
def rule_edit(request: HttpRequest, version: int, code: str) -> HttpResponse:
    require_may_tune(actor(request))
    ruleset = _version(version)
    rule = ruleset.rules.filter(code=code).first()
    if rule is None:
        raise Http404(_("No such rule"))
    form = RuleForm(request.POST, rule=rule)
    if not form.is_valid():
        return _ruleset_page(request, ruleset, {code: form}, status=400)
    try:
        rule_change(
            rule_id=rule.pk,
            actor=actor(request),
            params=form.params(),
            severity=form.cleaned_data["severity"],
            action=form.cleaned_data["action"],
            enabled=form.cleaned_data["enabled"],
            restore_on_clear=form.restore(),
        )
    except ParamsInvalid as exc:
        for key, message in exc.errors.items():
            field = f"p_{key}" if f"p_{key}" in form.fields else key if key in form.fields else None
            form.add_error(field, message)
        return _ruleset_page(request, ruleset, {code: form}, status=400)
    messages.success(request, _("%(code)s of draft version %(v)s saved.") % {"code": code, "v": version})
    return redirect(f"{_version_url(ruleset)}#rule-{code}")


@operator_required
@require_POST
@domain_errors(lambda request, version: reverse("riskops:ruleset", args=[version]))
def draft_discard(request: HttpRequest, version: int) -> HttpResponse:
    number = ruleset_discard(ruleset_id=_version(version).pk, actor=actor(request))
    messages.success(request, _("Draft version %(v)s discarded.") % {"v": number})
    return redirect("riskops:rules")


@operator_required
@require_POST
@domain_errors(lambda request, version: reverse("riskops:ruleset", args=[version]))
def simulate(request: HttpRequest, version: int) -> HttpResponse:
    simulation = simulation_request(version=version, actor=actor(request))
    messages.success(
        request,
        _("Simulating version %(v)s over every account (job #%(job)s): the figures fill in as its batches finish.")
        % {"v": version, "job": simulation.job_id},
    )
    return redirect("riskops:simulation", simulation.pk)


@operator_required
@require_POST
@domain_errors(lambda request, version: reverse("riskops:ruleset", args=[version]))
def backtest(request: HttpRequest, version: int) -> HttpResponse:
    form = BacktestForm(request.POST)
    if not form.is_valid():
        raise DomainError(" ".join(str(e) for errors in form.errors.values() for e in errors))
    done = backtest_request(version=version, actor=actor(request), days=form.cleaned_data["days"])
    messages.success(
        request,
        _(
            "Backtesting version %(v)s over %(first)s to %(last)s (job #%(job)s): the figures fill in as its batches finish."
        )
        % {"v": version, "first": done.first_day, "last": done.last_day, "job": done.job_id},
    )
    return redirect("riskops:backtest_report", done.pk)


def _csv(name: str, header: list[str]) -> tuple[HttpResponse, Any]:
    """A CSV download and its writer, the header written; UTF-8 with a byte-order mark, which spreadsheets need."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response.write("\ufeff")
    out = csv.writer(response)
    out.writerow(header)
    return response, out


@operator_required
@require_POST
@domain_errors(lambda request, version: reverse("riskops:ruleset", args=[version]))
def shadow(request: HttpRequest, version: int) -> HttpResponse:
    """Start (or extend) a draft's shadow until the end of a day; or, with `stop`, end it now."""
    ruleset = _version(version)
    if request.POST.get("stop"):
        ruleset_shadow_stop(ruleset_id=ruleset.pk, actor=actor(request))
        messages.success(request, _("Version %(v)s no longer runs in shadow.") % {"v": version})
        return redirect(_version_url(ruleset))
    form = ShadowForm(request.POST)
    if not form.is_valid():
        raise DomainError(" ".join(str(e) for errors in form.errors.values() for e in errors))
    end_of_day = datetime.combine(form.cleaned_data["until"] + timedelta(days=1), time.min)
    until = timezone.make_aware(end_of_day)
    ruleset_shadow(ruleset_id=ruleset.pk, until=until, actor=actor(request))
    messages.success(
        request,
        _("Version %(v)s runs in shadow until the end of %(day)s: every live evaluation also evaluates it.")
        % {"v": version, "day": form.cleaned_data["until"].isoformat()},
    )
    return redirect(_version_url(ruleset))


def _backtest(backtest_id: int) -> Backtest:
    found = Backtest.objects.select_related("ruleset", "requested_by").filter(pk=backtest_id).first()
    if found is None:
        raise Http404(_("No such backtest"))
    return found


@operator_required
@require_GET
def backtest_report(request: HttpRequest, backtest_id: int) -> HttpResponse:
    report = selectors.backtest_report(_backtest(backtest_id))
    template = "riskops/_backtest_report.html" if request.htmx else "riskops/backtest.html"  # type: ignore[attr-defined]
    return render(request, template, {"report": report, "endings": selectors.Ending.choices, "sides": selectors.SIDES})


@operator_required
@require_GET
def backtest_csv(request: HttpRequest, backtest_id: int) -> HttpResponse:
    found = _backtest(backtest_id)
    response, out = _csv(
        f"backtest-{found.pk}.csv", ["account_no", "days_spared", "days_caught", "first_day", "rule_families", "ending"]
    )
    for account_no, spared, caught, first_day, codes, ending in selectors.backtest_rows(found):
        out.writerow([account_no, spared, caught, first_day.isoformat(), codes.replace(",", " "), ending])
    return response


def _simulation(simulation_id: int) -> Simulation:
    simulation = Simulation.objects.select_related("ruleset", "requested_by").filter(pk=simulation_id).first()
    if simulation is None:
        raise Http404(_("No such simulation"))
    return simulation


@operator_required
@require_GET
def simulation(request: HttpRequest, simulation_id: int) -> HttpResponse:
    report = selectors.simulation_report(_simulation(simulation_id))
    template = "riskops/_simulation_report.html" if request.htmx else "riskops/simulation.html"  # type: ignore[attr-defined]
    return render(request, template, {"report": report, "outcomes": SimulationOutcome.choices})


@operator_required
@require_GET
def simulation_csv(request: HttpRequest, simulation_id: int, outcome: str) -> HttpResponse:
    if outcome not in SimulationOutcome.values:
        raise Http404(_("No such list"))
    sim = _simulation(simulation_id)
    response, out = _csv(
        f"simulation-{sim.pk}-{outcome}.csv", ["account_no", "rule_families", "exposure", "latest_case_id"]
    )
    for account_no, codes, exposure, case_id in selectors.simulation_rows(sim, outcome):
        out.writerow([account_no, codes.replace(",", " "), f"{exposure:.2f}", case_id or ""])
    return response


@operator_required
@require_http_methods(["GET", "POST"])
@domain_errors(lambda request, version: reverse("riskops:activate", args=[version]))
def activate(request: HttpRequest, version: int) -> HttpResponse:
    """The approval page of a draft: what it changes of the live version, its latest simulation and whether that
    can back an activation now, the blast radius; a second risk manager activates it here."""
    ruleset = _version(version)
    if request.method == "POST":
        form = ActivateForm(request.POST)
        if not form.is_valid():
            raise DomainError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        done = ruleset_activate(
            version=version,
            actor=actor(request),
            simulation_id=form.cleaned_data["simulation"],
            backtest_id=form.cleaned_data["backtest"],
            reason=form.cleaned_data["reason"],
            reevaluate=form.cleaned_data["reevaluate"],
        )
        messages.success(
            request,
            _("Version %(v)s is live (it replaced version %(was)s).") % {"v": version, "was": done.previous},
        )
        if done.job is not None:
            return redirect("riskops:job", done.job.pk)
        return redirect("riskops:ruleset", version)
    review = selectors.activation_review(ruleset, actor(request))
    form = ActivateForm(
        initial={
            "simulation": review.simulation.pk if review.simulation else None,
            "backtest": review.backtest.backtest.pk if review.backtest else None,
        }
    )
    return render(request, "riskops/activate.html", {"review": review, "form": form})
