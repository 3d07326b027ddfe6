from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.explain import explain
from accounts.selectors import flagged_cases

PAGE_SIZE = 50


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Flagged accounts with their active signals, most severe first (keyset pages, no COUNT)."""
    after = None
    raw = request.GET.get("after", "")
    if raw:
        try:
            rank, case_id = (int(x) for x in raw.split(":", 1))
            after = (rank, case_id)
        except ValueError:
            after = None
    cases = flagged_cases(after=after, limit=PAGE_SIZE + 1)
    has_more = len(cases) > PAGE_SIZE
    cases = cases[:PAGE_SIZE]
    for case in cases:
        case.explained = [(s, explain(s)) for s in case.line.active_signals]  # type: ignore[attr-defined]
    next_cursor = f"{cases[-1].severity_rank}:{cases[-1].pk}" if has_more and cases else ""
    return render(request, "accounts/home.html", {"cases": cases, "next_cursor": next_cursor})
