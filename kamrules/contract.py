"""The data contract: typed, immutable descriptions of the store's tables.

The core tables are declared here and registered through the built-in plugin
``kamrules_plugins.contract`` (hook ``register_tables``), exactly as a third-party
plugin declares an extra table.
"""

from __future__ import annotations

from dataclasses import dataclass

from kamrules import vocab as V

# Column kinds. Values are validated and converted on import:
#   text   -> str                      date  -> ISO 'YYYY-MM-DD' str
#   int    -> int                      bool  -> 0/1 (true/false/yes/no/1/0)
#   float  -> float                    email -> str, a single valid address
KINDS = ("text", "int", "float", "date", "bool", "email")

SQL_TYPES = {"text": "TEXT", "int": "INTEGER", "float": "REAL", "date": "TEXT", "bool": "INTEGER", "email": "TEXT"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "text"
    required: bool = False
    choices: tuple[str, ...] = ()  # an enumeration; empty = any value
    references: str | None = None  # "table.column", e.g. "accounts.id"
    default: object = None  # used when the column is absent or blank

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r} (expected one of {', '.join(KINDS)})")

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.kind]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ("id",)
    indexes: tuple[tuple[str, ...], ...] = ()
    description: str = ""

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def references(self) -> dict[str, str]:
        return {c.name: c.references for c in self.columns if c.references}

    @property
    def depends_on(self) -> set[str]:
        return {r.split(".")[0] for r in self.references.values()} - {self.name}


def C(name: str, kind: str = "text", required: bool = False, choices=(), references=None, default=None) -> Column:
    return Column(name, kind, required, tuple(choices), references, default)


ACCOUNT = "accounts.id"

CORE_TABLES: tuple[Table, ...] = (
    Table(
        "accounts",
        (
            C("id", required=True),
            C("name", required=True),
            C("tier", required=True, choices=V.TIERS),
            C("owner"),
            C("owner_email", "email"),
            C("buyer_type", choices=V.BUYER_TYPES),
            C("purchasing", choices=V.PURCHASING),
            C("segment"),
            C("region"),
            C("status", choices=V.STATUSES, default="active"),
            C("stage", choices=V.STAGES),
            C("stage_since", "date"),
            C("relationship_stage", choices=V.RELATIONSHIP_STAGES),
            C("lost_reason"),
            C("created_on", "date"),
        ),
        indexes=(("tier",), ("owner",), ("status",)),
        description="One row per account (customer or prospect).",
    ),
    Table(
        "stage_history",
        (
            C("account_id", required=True, references=ACCOUNT),
            C("stage", required=True, choices=V.STAGES),
            C("entered_on", "date", required=True),
        ),
        primary_key=("account_id", "stage", "entered_on"),
        indexes=(("account_id", "entered_on"),),
        description="One row per pipeline stage change; when present it is the authority on stages.",
    ),
    Table(
        "contacts",
        (
            C("id", required=True),
            C("account_id", required=True, references=ACCOUNT),
            C("name", required=True),
            C("role", choices=V.CONTACT_ROLES),
            C("email", "email"),
            C("phone"),
            C("active", "bool", default=1),
        ),
        indexes=(("account_id",),),
        description="People at an account.",
    ),
    Table(
        "channels",
        (
            C("account_id", required=True, references=ACCOUNT),
            C("kind", required=True, choices=V.CHANNEL_KINDS),
            C("contact"),
            C("client_informed", "bool"),
            C("since", "date"),
        ),
        primary_key=("account_id", "kind"),
        indexes=(),
        description="Standing lines of communication with an account.",
    ),
    Table(
        "activities",
        (
            C("id", required=True),
            C("account_id", required=True, references=ACCOUNT),
            C("date", "date", required=True),
            C("kind", required=True, choices=V.ACTIVITY_KINDS),
            C("level", choices=V.ACTIVITY_LEVELS),
            C("contact_id", references="contacts.id"),
            C("by"),
            C("duration_minutes", "int"),
            C("attitude", choices=V.ATTITUDES),
            C("cost", "float"),
            C("notes"),
        ),
        indexes=(("account_id", "date"),),
        description="Visits, calls, meetings and other contacts with an account.",
    ),
    Table(
        "orders",
        (
            C("id", required=True),
            C("account_id", required=True, references=ACCOUNT),
            C("date", "date", required=True),
            C("amount", "float", required=True),
            C("margin", "float"),
        ),
        indexes=(("account_id", "date"),),
        description="Orders (revenue and margin).",
    ),
    Table(
        "concessions",
        (
            C("id", required=True),
            C("account_id", required=True, references=ACCOUNT),
            C("date", "date", required=True),
            C("kind", required=True, choices=V.CONCESSION_KINDS),
            C("amount", "float", required=True),
            C("commitment_id", references="commitments.id"),
        ),
        indexes=(("account_id", "date"),),
        description="Anything given away to win or keep an account.",
    ),
    Table(
        "commitments",
        (
            C("id", required=True),
            C("account_id", required=True, references=ACCOUNT),
            C("start", "date", required=True),
            C("end", "date", required=True),
            C("target_amount", "float", required=True),
            C("signed", "bool"),
            C("document"),
        ),
        indexes=(("account_id",),),
        description="Signed agreements with a quantified target, in return for concessions.",
    ),
    Table(
        "complaints",
        (
            C("id", required=True),
            C("account_id", required=True, references=ACCOUNT),
            C("opened_on", "date", required=True),
            C("closed_on", "date"),
            C("severity", choices=V.COMPLAINT_SEVERITIES),
            C("escalated", "bool"),
        ),
        indexes=(("account_id", "opened_on"),),
        description="Complaints raised by an account.",
    ),
)


def load_order(tables: dict[str, Table]) -> list[str]:
    """Table names in dependency order (referenced tables first); stable for ties."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen or name not in tables:
            return
        if name in path:
            raise ValueError(f"tables reference each other in a cycle: {' -> '.join(path + (name,))}")
        for dep in sorted(tables[name].depends_on):
            visit(dep, path + (name,))
        seen.add(name)
        order.append(name)

    for name in tables:
        visit(name, ())
    return order
