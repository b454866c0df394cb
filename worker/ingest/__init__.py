"""Sources that bring IdP events into Kafka (`sessionwarden ingest ...`)."""
