"""The case store: review cases, their history, determinations, appeals, deadline extensions, outreach
contacts and users, in SQLite (the embedded default) or PostgreSQL (for a team), with Alembic migrations."""
