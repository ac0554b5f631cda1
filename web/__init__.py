"""The web UI and API of relay: reads the store, calls its operator actions."""

from web.app import create_app

__all__ = ["create_app"]
