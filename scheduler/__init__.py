"""The scheduler: `python -m scheduler`. Its jobs only enqueue actors, under a leader lock."""
