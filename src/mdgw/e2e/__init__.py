"""``mdgw bench e2e``: the venue, clients, ceilings and report of the end-to-end latency bench."""
