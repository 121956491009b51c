"""Built-in rule set missing_escalation_channels: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
