"""Built-in plugin: core_facts (placeholder until implemented)."""
