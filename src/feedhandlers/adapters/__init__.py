"""Feed-handler adapters: the Kafka producer side and the venue connection side."""
