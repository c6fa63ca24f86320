"""Integrations: catalog, OAuth, vault and the broker behind integrations.request."""
