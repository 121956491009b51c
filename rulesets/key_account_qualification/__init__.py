"""Built-in rule set key_account_qualification: rules.yaml, its facts (plugin.py), defect recipes (defects.py), tests (rules.test.yaml)."""
