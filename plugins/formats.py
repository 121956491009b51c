"""Built-in plugin: formats (placeholder until implemented)."""
