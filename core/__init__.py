"""The domain: pure Python and SQLAlchemy. Never imports Flask, Dramatiq or the scheduler."""
