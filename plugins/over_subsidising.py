"""Built-in plugin: over_subsidising (placeholder until implemented)."""
