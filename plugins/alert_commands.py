"""Built-in plugin: alert_commands (placeholder until implemented)."""
