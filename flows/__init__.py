"""Prefect flows and tasks: the only package that imports prefect; thin over orchestrator.app.service."""
