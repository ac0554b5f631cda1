"""Alembic's script directory: env.py, the template of new revisions, and versions/.

relay.store.migrate runs them; nothing imports this package directly.
"""
