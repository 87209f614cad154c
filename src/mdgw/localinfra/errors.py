"""The one error of ``mdgw infra``: its message is written for the person at the terminal."""


class LocalInfraError(Exception):
    """A local server could not be resolved, configured, started or stopped."""
