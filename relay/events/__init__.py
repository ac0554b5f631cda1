"""Webhooks: the events the store writes to its outbox, POSTed signed to their receivers
(worker.py), with retries, in order per message, at least once (signing.py signs them)."""
