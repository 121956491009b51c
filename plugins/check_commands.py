"""Built-in plugin: check_commands (placeholder until implemented)."""
