"""The platform watching itself: health checks of every part, their history, incidents."""
