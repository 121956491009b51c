"""Built-in rule set neglected_small_clients: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
