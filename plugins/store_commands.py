"""Built-in plugin: store_commands (placeholder until implemented)."""
