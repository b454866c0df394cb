"""The I/O side of sessionwarden: decoding, enrichment, replay and the Kafka worker."""
