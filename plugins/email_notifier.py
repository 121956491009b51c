"""Built-in plugin: email_notifier (placeholder until implemented)."""
