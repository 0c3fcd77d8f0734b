"""Swarm health: tracker scrapes (scrape), DHT lookups (dht) and web-seed probes (webseeds), run together
by check and written to the registry's health store (modelreg.registry.health)."""
