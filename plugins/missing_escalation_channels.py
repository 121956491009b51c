"""Built-in plugin: missing_escalation_channels (placeholder until implemented)."""
