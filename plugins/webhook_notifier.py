"""Built-in plugin: webhook_notifier (placeholder until implemented)."""
