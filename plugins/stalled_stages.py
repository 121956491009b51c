"""Built-in plugin: stalled_stages (placeholder until implemented)."""
