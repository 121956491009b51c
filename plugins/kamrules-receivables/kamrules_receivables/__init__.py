"""kamrules-receivables: an example kamrules plugin for overdue receivables (回款)."""

__version__ = "0.1.0"
