"""Dramatiq actors: thin wrappers that call `core`. Start them with `dramatiq workers.boot`."""
