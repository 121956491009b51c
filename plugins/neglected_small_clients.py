"""Built-in plugin: neglected_small_clients (placeholder until implemented)."""
