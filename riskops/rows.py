"""Unsaved model instances as JSON rows, for a service that writes several tables in one statement.

`bulk_create` costs a statement (and a round trip) per table. A service on a hot path (appeal intake) can instead
write its rows with data-modifying CTEs in one statement, each table's rows passed as one JSON parameter and
turned into rows by PostgreSQL (`jsonb_populate_recordset`, which converts each value with its column's input
function, so an over-long string fails instead of being cut). The values still come from the models (defaults,
`pre_save`, field conversion), so the SQL cannot drift from what the ORM would have written.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models


def rows_sql(instances: Sequence[models.Model]) -> tuple[str, str, str]:
    """`(table, columns, rows)` for `INSERT INTO table (columns) SELECT columns FROM rows`.

    `rows` is SQL reading one `%s` parameter, the JSON text from `rows_json` for the same instances. The primary
    key is included when the instances carry one.
    """
    model = type(instances[0])
    _fields, columns = _shape(model, instances[0].pk is not None)
    table = connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table)
    return table, columns, f"jsonb_populate_recordset(NULL::{table}, %s::jsonb)"


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
    return json.dumps(rows, cls=_Encoder, ensure_ascii=False)


class _Encoder(json.JSONEncoder):
    """Values in PostgreSQL's input syntax; times keep their microseconds (DjangoJSONEncoder cuts them to ms)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime | datetime.date | datetime.time):
            return o.isoformat()
        if isinstance(o, decimal.Decimal | uuid.UUID):
            return str(o)
        return super().default(o)


@functools.cache
def _shape(model: type[models.Model], with_pk: bool) -> tuple[list[Any], str]:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    return fields, ", ".join(quote(str(f.column)) for f in fields)
