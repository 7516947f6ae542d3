"""Everything that talks to the world outside the process, each behind a small Protocol with a
real implementation and an in-memory one (for unit tests and the embedded mode): mail (SMTP, or
files), webhooks (HTTP), the cache and liveness store (Redis), notification wake-ups (pub/sub)."""
