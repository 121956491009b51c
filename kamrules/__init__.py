"""kamrules: health checks for a company's key accounts."""

from kamrules.hookspecs import hookimpl  # noqa: F401  (plugins import it from here)

__version__ = "0.1.0"
