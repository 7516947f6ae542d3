"""Notifications for an account: stored, then pushed live to its open browser tabs."""
