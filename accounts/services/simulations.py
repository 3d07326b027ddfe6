"""Simulating a draft of the rules: each batch of accounts evaluated with the draft through the engine's own read,
rule queries and diff (`accounts.engine.project_lines`), changing no account, and the accounts whose state its
activation would change recorded (`SimulationLine`).

Both versions are evaluated on the same data (the families whose rule is the same in both, once), so what the
live version would change by itself (data that moved since the last evaluation) is not put down to the draft.
Newly frozen: an active line where a freezing rule of the draft would fire and none of the live version's would.
Newly released: a frozen line whose last freeze came from a signal, that keeps no freezing signal under the draft
and fires none, and that the live version keeps frozen (what activating the draft, then a re-evaluate-and-unfreeze
job, would lift; people's holds aside: an open appeal, a proposal, a limit over the four-eyes amount).
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import F

from accounts import engine
from accounts.models import CreditLine, LineStatus, RuleSet, Simulation, SimulationLine, SimulationOutcome
from accounts.rule_queries import version_rules


def simulation_run_batch(*, job_id: int, line_ids: list[int]) -> int:
    """Simulate the job's draft over these accounts, against the live version on the same data; runs in the job
    batch's transaction (exactly once with it). Returns how many accounts it would change."""
    simulation = Simulation.objects.select_related("ruleset").get(job_id=job_id)
    rules = version_rules(simulation.ruleset_id)
    live = version_rules(RuleSet.objects.get(version=simulation.live_version).pk)
    projection = engine.project_lines(line_ids, rules=rules, live=live, now=simulation.requested_at)
    # Newly frozen: the draft fires a freezing rule that the live version does not. Newly released: the draft keeps
    # no freezing signal and fires none, where the live version keeps or fires one.
    freezing = {i for i in projection.would_freeze if i not in projection.live_would_freeze}
    releasing = {
        i
        for i in set(projection.live_kept) | set(projection.live_would_freeze)
        if i not in projection.kept and i not in projection.would_freeze
    }
    touched = freezing | releasing
    lines = {pk: (status, outstanding) for pk, status, outstanding in _states(touched)} if touched else {}
    rows = [
        SimulationLine(
            simulation=simulation,
            line_id=line_id,
            outcome=SimulationOutcome.FREEZE,
            codes=",".join(sorted(projection.would_freeze[line_id])),
            exposure=lines[line_id][1],
        )
        for line_id in sorted(freezing)
        if lines.get(line_id, ("",))[0] == LineStatus.ACTIVE
    ]
    frozen = [i for i in sorted(releasing) if lines.get(i, ("",))[0] == LineStatus.FROZEN]
    rows += [
        SimulationLine(
            simulation=simulation,
            line_id=line_id,
            outcome=SimulationOutcome.RELEASE,
            codes=",".join(sorted(projection.cleared.get(line_id) or projection.live_kept.get(line_id, set()))),
            exposure=lines[line_id][1],
        )
        for line_id in sorted(engine.frozen_by_signal(frozen))  # a freeze a person made is a person's to lift
    ]
    SimulationLine.objects.bulk_create(rows)
    Simulation.objects.filter(pk=simulation.pk).update(evaluated=F("evaluated") + projection.evaluated)
    return len(rows)


def _states(line_ids: set[int]) -> list[tuple[int, str, Decimal]]:
    return list(CreditLine.objects.filter(pk__in=line_ids).values_list("pk", "status", "outstanding"))
