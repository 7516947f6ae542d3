"""Resumable onboarding: the state machine, stage data, progress, reminders."""
