"""``mdgw``: the one command-line entry point of the market-data gateway project."""

import os

# gRPC's C core reads GRPC_VERBOSITY once, when grpc is first imported (mdgw.cli imports it):
# unset, it prints the TLS library's lines about a failed handshake (a client without
# --insecure against a plaintext gateway) beside the command's own one-line error. Errors still
# print; set GRPC_VERBOSITY=INFO (or DEBUG) to see the rest.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
