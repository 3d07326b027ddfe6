"""Named prepared statements on Django's connection, for the few statements on the busiest paths.

PostgreSQL parses and plans a statement each time it is sent; for the appeal intake's statements (the token and
role lookup, the lock, the multi-table insert) that is a good part of the database's work. `execute_prepared`
sends `PREPARE name AS ...` once per connection and `EXECUTE name(...)` after that. It goes through Django's
cursor, so query logging and query counting in tests see it like any other statement. Prepared statements live
in a server session: behind a pooler in transaction mode (PgBouncer's default) this needs `DATABASE_PREPARED=false`.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from django.conf import settings

# Per psycopg connection (a reconnect starts empty): the names prepared on it.
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%s")


def execute_prepared(cursor: Any, name: str, sql: str, params: list[Any]) -> None:
    """Run `sql` (with `%s` placeholders) as the prepared statement `name` of this connection."""
    if not settings.DATABASE_PREPARED:
        cursor.execute(sql, params)
        return
    raw = cursor.db.connection
    names = _prepared.setdefault(raw, set())
    if name not in names:
        assert "%%" not in sql and "%(" not in sql, "only %s placeholders"
        numbers = iter(range(1, len(params) + 1))
        cursor.execute(f"PREPARE {name} AS {_PLACEHOLDER.sub(lambda _m: f'${next(numbers)}', sql)}")
        names.add(name)
    cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}", params)
