"""Built-in plugin: the core tables of the data contract."""

from kamrules import hookimpl
from kamrules.contract import CORE_TABLES


@hookimpl
def register_tables():
    return list(CORE_TABLES)
