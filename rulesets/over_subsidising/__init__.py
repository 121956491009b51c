"""Built-in rule set over_subsidising: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
