"""Storage: SQLModel tables, the database connection, queries. Only here is SQLAlchemy imported."""
