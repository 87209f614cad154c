"""The local exchange simulator behind ``mdgw simulate`` (demos and tests)."""
