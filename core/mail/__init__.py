"""E-mail the platform sends: templates rendered to text + HTML parts, per-recipient allowances,
and the helper handlers use to send one for an event. The transports (SMTP, .eml files) are
adapters: core.adapters.mail."""
