"""Storage: SQLModel tables (`models`), the connection (`db`), migrations (`migrate`), the
queries (`repo`, `segments`, `plain` for SQLite's hot statements) and what a database
failure is (`failures`).

SQLAlchemy, SQLModel and Alembic belong here: import-linter's `sql` contract
(pyproject.toml) allows no other importer, and lists the modules whose queries are
still to move here.
"""
