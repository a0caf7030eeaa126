"""Alembic revisions of the schema, one file each (see `reclaim db revision`)."""
