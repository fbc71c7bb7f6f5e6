"""Benchmarks: ``python -m bench NAME`` (``dashboard``, ``outbox`` or ``all``).

Each benchmark runs the production server configuration on throwaway embedded PostgreSQL and
Valkey, measures a baseline in the same run, prints a table and ends with one ``key=value`` line.
Figures are recorded in docs/PERFORMANCE.md.
"""
