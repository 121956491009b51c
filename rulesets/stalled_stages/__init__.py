"""Built-in rule set stalled_stages: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
