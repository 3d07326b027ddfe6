"""Helpers of the few modules that write raw SQL: the engine's rule queries, the line transitions, the jobs'
batches and the appeal intake. Everything else goes through the ORM.

- **Batches of ids.** A batch is a stretch of consecutive line ids (jobs and the engine cut them so). `id_array`
  sends its ids as one `bigint[]` literal: psycopg would adapt a Python list element by element (about 6 ms for
  2,000 ids). `in_batch` is the condition that keeps a batch's rows (the planner workaround, explained there);
  `batch_params` its parameter.
- **Rows as JSON.** A set-based statement writes many rows of several tables at once with data-modifying CTEs; the
  rows go in as one JSON parameter each (`to_json`), read by `jsonb_to_recordset`/`jsonb_populate_recordset`,
  which convert each value with its column's input function (an over-long string fails instead of being cut).
  `rows_json`/`rows_sql` do it for unsaved model instances, so the values come from the models' own field
  conversion (defaults, `pre_save`).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.expressions import RawSQL


def id_array(ids: Iterable[int]) -> str:
    """A bigint[] literal: psycopg adapts a list of ints element by element, a string in one go. Each id goes
    through int(), so nothing but digits gets into the literal."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def batch_params(ids: Sequence[int]) -> dict[str, Any]:
    """The parameter `in_batch` reads: the batch's ids."""
    return {"ids": id_array(ids)}


def id_range(column: str, ids: Sequence[int]) -> str:
    """`column BETWEEN lo AND hi`, the range the ids span, written into the statement."""
    return f"{column} BETWEEN {int(min(ids))} AND {int(max(ids))}"


def in_batch(column: str, ids: Sequence[int]) -> str:
    """The condition that keeps the rows of a batch of line ids (with `batch_params(ids)`): `column` is a line id.

    The range goes through the index; the ids are then a filter PostgreSQL checks against a hash of the list
    (`column + 0` is not indexable, so the list cannot become an index condition). Written as `column = ANY(ids)`,
    PostgreSQL 15 would descend the index once per id and estimate each id's selectivity: for 2,000 ids a few ms of
    planning per query, and estimates that made it read every frozen line through the status index.
    The range is written into the statement, not bound: a statement that a connection runs often is prepared
    (settings: prepare_threshold), and PostgreSQL then plans it once for any parameters (a generic plan), which does
    not know the range. A batch query planned so took 460 ms instead of 7 (PROFILE_STALE); with the range in the
    text every batch's statement is planned for its own range.
    """
    return f"{id_range(column, ids)} AND {column} + 0 = ANY(%(ids)s::bigint[])"


def around_batch(column: str, ids: Sequence[int]) -> str:
    """Like `in_batch`, for a read whose caller keeps its own lines from the rows: only the range when the batch
    fills most of it (the engine's batches are consecutive open lines, so their range holds them and the closed
    lines between), which spares PostgreSQL the list (planning and checking 2,000 ids: about a third of a small
    read); `in_batch` when the ids are scattered. The rows may belong to lines in the range outside the batch."""
    lo, hi = int(min(ids)), int(max(ids))
    return id_range(column, ids) if hi - lo + 1 <= 2 * len(ids) else in_batch(column, ids)


def inline_int(value: int) -> RawSQL:
    """An integer written into the statement rather than bound, for an ORM condition whose best plan depends on the
    value (see `in_batch`): once prepared, a statement gets a generic plan, the plan of an average value for every
    value. The audit page's filter by operator: an average operator has 100,000 of 2M events, so the generic plan walks
    the primary key back and checks each event (3.3 s for an operator with 50), where the operator's index answers
    in 0.1 ms. Through int(), so nothing but digits gets into the statement."""
    return RawSQL(str(int(value)), ())  # noqa: S611 - an int, through int()


def not_indexed(column: str) -> str:
    """A text column the planner must not use an index for (see `in_batch`): a condition to check, not to scan by."""
    return f"({column} || '')"


class _Encoder(json.JSONEncoder):
    """Values in PostgreSQL's input syntax; times keep their microseconds (DjangoJSONEncoder cuts them to ms)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime | datetime.date | datetime.time):
            return o.isoformat()
        if isinstance(o, decimal.Decimal | uuid.UUID):
            return str(o)
        return super().default(o)


def to_json(rows: Any) -> str:
    return json.dumps(rows, cls=_Encoder, ensure_ascii=False, separators=(",", ":"))


def table(model: type[models.Model]) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)


def rows_sql(instances: Sequence[models.Model], param: str) -> tuple[str, str, str]:
    """`(table, columns, rows)` for `INSERT INTO table (columns) SELECT columns FROM rows`.

    `rows` is SQL reading the named parameter `param`, the JSON text from `rows_json` for the same instances. The
    primary key is included when the instances carry one.
    """
    model = type(instances[0])
    _fields, columns = _shape(model, instances[0].pk is not None)
    name = table(model)
    return name, columns, f"jsonb_populate_recordset(NULL::{name}, %({param})s::jsonb)"


def rows_json(instances: Sequence[models.Model]) -> str:
    fields, _columns = _shape(type(instances[0]), instances[0].pk is not None)
    rows = []
    for instance in instances:
        row = {}
        for f in fields:
            value = f.pre_save(instance, True)
            # A JSON column takes the value itself; everything else its database form, as JSON text or number.
            row[f.column] = value if isinstance(f, models.JSONField) else f.get_prep_value(value)
        rows.append(row)
    return to_json(rows)


@functools.cache
def _shape(model: type[models.Model], with_pk: bool) -> tuple[list[Any], str]:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    return fields, ", ".join(quote(str(f.column)) for f in fields)
