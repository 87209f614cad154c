"""tickwriter service."""
