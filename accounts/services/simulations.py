"""Simulating a draft of the rules: each batch of accounts evaluated with the draft through the engine's own read,
rule queries and diff (`accounts.engine.project_lines`), changing no account, and the accounts whose state its
activation would change recorded (`SimulationLine`).

Newly frozen: an active line where a freezing rule of the draft would fire. Newly released: a frozen line whose
last freeze came from a signal, that keeps no freezing signal under the draft, and that the live version keeps
frozen (what activating the draft, then a re-evaluate-and-unfreeze job, would lift; people's holds aside: an open
appeal, a proposal, a limit over the four-eyes amount).
"""

from __future__ import annotations

from django.db.models import F

from accounts import engine
from accounts.models import CreditLine, LineStatus, Simulation, SimulationLine, SimulationOutcome


def simulation_run_batch(*, job_id: int, line_ids: list[int]) -> int:
    """Simulate the job's draft over these accounts; runs in the job batch's transaction (exactly once with it).
    Returns how many accounts it would change."""
    simulation = Simulation.objects.select_related("ruleset").get(job_id=job_id)
    rules = {r.code: r for r in simulation.ruleset.rules.filter(enabled=True).select_related("ruleset")}
    projection = engine.project_lines(line_ids, rules=rules, now=simulation.requested_at)
    touched = set(projection.would_freeze) | set(projection.would_clear_freeze)
    state = dict(CreditLine.objects.filter(pk__in=touched).values_list("pk", "status")) if touched else {}
    exposure = dict(CreditLine.objects.filter(pk__in=touched).values_list("pk", "outstanding")) if touched else {}
    rows = [
        SimulationLine(
            simulation=simulation,
            line_id=line_id,
            outcome=SimulationOutcome.FREEZE,
            codes=",".join(sorted(set(codes))),
            exposure=exposure[line_id],
        )
        for line_id, codes in projection.would_freeze.items()
        if state.get(line_id) == LineStatus.ACTIVE
    ]
    # Released: no freezing signal left under the draft, and one left under the live version (else the live
    # version releases it too: nothing the draft changes).
    clearing = [
        i
        for i in projection.would_clear_freeze
        if state.get(i) == LineStatus.FROZEN and i not in projection.freezing_left and i not in projection.would_freeze
    ]
    rows += [
        SimulationLine(
            simulation=simulation,
            line_id=line_id,
            outcome=SimulationOutcome.RELEASE,
            codes=",".join(sorted(set(projection.would_clear_freeze[line_id]))),
            exposure=exposure[line_id],
        )
        for line_id in sorted(engine.frozen_by_signal(clearing))
    ]
    SimulationLine.objects.bulk_create(rows)
    Simulation.objects.filter(pk=simulation.pk).update(evaluated=F("evaluated") + projection.evaluated)
    return len(rows)
