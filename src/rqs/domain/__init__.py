"""The pure core of rqs: event model, type catalog, topics. No I/O here."""
