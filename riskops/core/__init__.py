"""What every app of the project uses: errors, audit, roles, the SQL helpers, the HTTP and API error mapping.

Nothing here imports an app (`accounts`, `appeals`) or the jobs; import-linter checks it (`.importlinter`).
"""
