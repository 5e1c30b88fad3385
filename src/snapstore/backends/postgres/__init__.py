"""The PostgreSQL backend: a store is a schema of a PostgreSQL database.

``SnapshotStore("postgresql://user@host:5432/db?schema=NAME")`` opens (and,
unless read-only, creates) the store in schema NAME (default ``snapstore``);
``IterationHistory("postgresql://...?schema=NAME&history=H")`` opens the
history H of that store. Needs psycopg 3 (``pip install 'snapstore[postgres]'``).

Modules: ``target`` (what a URL names), ``store`` and ``history`` (the
handles), ``connection`` (addresses, sessions, reconnection) and ``schema``
(the tables, server-side functions and statements, created and upgraded
under an advisory lock).
"""
