"""feedhandlers service."""
