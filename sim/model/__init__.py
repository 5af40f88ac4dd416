"""The Kafka model: brokers, controller, producers, consumers, network and faults."""
