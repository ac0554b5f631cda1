"""One module per schema revision, in order; Alembic reads `revision` and `down_revision`."""
