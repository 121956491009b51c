"""Allow ``python -m kamrules``."""

from kamrules.cli import cli

if __name__ == "__main__":  # pragma: no cover
    cli()
