"""The gateway's pure core: no grpc, no Kafka, no clock (time arrives as ``now_ns``)."""
