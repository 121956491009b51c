"""Built-in rule set resource_mismatch: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
