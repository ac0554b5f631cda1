"""Delivery: the queue worker, connection pools per destination, MX lookup, retry policy."""
