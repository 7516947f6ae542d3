"""Metrics: figures rolled up by the workers into `metric_points`, and read from there only."""
