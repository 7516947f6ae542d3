"""Practices (tenants) and the walls between them."""
