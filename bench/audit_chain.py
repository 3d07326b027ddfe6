"""The audit chain's cost: writing audit events with the chain on and off, sealing them, verifying them.

    python -m bench.audit_chain [--rows 100000] [--rounds 3]

Rows are written as a bulk unfreeze writes them (`audit_write`: one INSERT through `audit_insert`, JSON rows),
in rounds of `--rows`; "chain off" is the same INSERT with the chain's only write-path cost removed (the partial
index of unsealed events), inside a transaction that is rolled back so the database keeps its schema. Then the
sealer chains what was written and `verify_audit`'s walk checks it. The CPU is shared: compare figures of one run.
"""

from __future__ import annotations

import argparse
import time

from bench.common import ensure_database, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup(default_database="riskops_bench_audit")
    ensure_database()

    from django.db import connection, transaction
    from django.utils import timezone

    from riskops.core.audit import Actor, Change, audit_write
    from riskops.core.audit_chain import audit_seal, audit_verify

    changes = [
        Change("line.unfreeze", "line", i, i, {"status": "frozen", "available": "0.00"}, {"status": "active"}, "bulk")
        for i in range(1, args.rows + 1)
    ]

    def write(chain: bool) -> float:
        with transaction.atomic():
            if not chain:
                with connection.cursor() as cur:
                    cur.execute("DROP INDEX audit_unsealed")
            start = time.perf_counter()
            audit_write(actor=Actor.job(1), at=timezone.now(), changes=changes)
            elapsed = time.perf_counter() - start
            if not chain:
                transaction.set_rollback(True)
        return elapsed

    on, off = [], []
    for _ in range(args.rounds):
        off.append(write(chain=False))
        on.append(write(chain=True))
    per_row = (min(on) - min(off)) / args.rows * 1e6
    print(f"write {args.rows} audit rows: chain on {min(on):.3f} s, off {min(off):.3f} s (best of {args.rounds})")
    print(f"  the chain adds {per_row:.2f} us per row on the write path ({min(on) / min(off) - 1:+.1%})")

    start = time.perf_counter()
    sealed = audit_seal()
    seal = time.perf_counter() - start
    print(f"seal {sealed} events: {seal:.2f} s ({seal / max(sealed, 1) * 1e6:.1f} us per event, off the write path)")
    start = time.perf_counter()
    verification = audit_verify(by="bench", seal=False)
    walk = time.perf_counter() - start
    print(
        f"verify {verification.events_checked} events: {walk:.2f} s "
        f"({verification.events_checked / walk:,.0f} events/s), ok={verification.ok}"
    )


if __name__ == "__main__":
    main()
