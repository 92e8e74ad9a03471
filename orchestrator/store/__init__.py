"""Storage: SQLModel tables (`models`), the connection (`db`), migrations (`migrate`), the
queries (`repo`, `segments` over the rules `segment_rules` compiles to SQL, `plain` for
SQLite's hot statements) and what a database failure is (`failures`).

SQLAlchemy, SQLModel and Alembic belong here: import-linter's `sql` contract
(pyproject.toml) allows no other importer, and lists the modules whose queries are
still to move here.
"""

# The modules the rest of the project (and its users) may import; the others are this
# package's own.
__all__ = ["db", "failures", "migrate", "models", "repo", "segments"]
