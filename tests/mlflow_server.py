"""The tests' real servers live in :mod:`benchmarks.servers` (the load benchmark starts them too): a real
``mlflow server`` (SQLite or PostgreSQL store, optional basic-auth app) and a throwaway PostgreSQL cluster."""

from __future__ import annotations

from benchmarks.servers import MlflowServer, PostgresServer, free_port, postgres_bin

__all__ = ["MlflowServer", "PostgresServer", "free_port", "postgres_bin"]
