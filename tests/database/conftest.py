"""Core computations that live in SQL (the metrics rollup): they run on the real database the
suite is given (PostgreSQL in CI), where tests/core runs on SQLite and the in-memory adapters."""
