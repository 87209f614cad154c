"""``mdgw``: the one command-line entry point of the market-data gateway project."""
