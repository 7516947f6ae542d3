"""Audit entries: who did what, from where, to what, and when."""
