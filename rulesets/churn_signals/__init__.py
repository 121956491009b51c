"""Built-in rule set churn_signals: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
