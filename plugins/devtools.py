"""Built-in plugin: devtools (placeholder until implemented)."""
