"""Venue adapters: for each, the wire format (schema), a pure parser and a thin client."""
