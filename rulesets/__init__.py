"""Declarative rule-set files shipped with kamrules (package data: *.yaml)."""
