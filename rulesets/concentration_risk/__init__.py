"""Built-in rule set concentration_risk: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
