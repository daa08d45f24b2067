"""Ranking, statistics and the comparison report built from a sweep's MLflow runs (analysis issue)."""
