"""A notifier that routes an empty group to a recipient sends nothing (no empty messages)."""

import datetime as dt

from smtp_server import Result, alert, settings_for

from kamrules import hookimpl
from kamrules.lifecycle import record_and_notify
from kamrules.lifecycle.notifiers import Rendered
from kamrules.plugins import make_plugin_manager
from kamrules.store import Store

NOW = dt.datetime(2026, 10, 31, 8, 0, tzinfo=dt.UTC)


class FileNotifier:
    """The hookspec's example: routes every item, even none, to one file."""

    name = "file"

    def __init__(self, path):
        self.path = path

    def route(self, items, settings):
        return {str(self.path): list(items)}, []

    def render(self, recipient, items, key, as_of, settings):
        return Rendered(f"{len(items)} alerts", "".join(f"{i.alert.code}\n" for i in items).encode())

    def send(self, recipient, payload, settings):
        with open(recipient, "ab") as f:
            f.write(payload)


def test_no_message_when_nothing_is_due(tmp_path):
    out = tmp_path / "alerts.log"

    class Plugin:
        @hookimpl
        def register_notifiers(self):
            return [FileNotifier(out)]

    pm = make_plugin_manager(load_entry_points=False, extra=[Plugin()])
    settings = settings_for(1)
    with Store.open(tmp_path / "s.db", pm=pm) as store:
        report = record_and_notify(store, Result(alerts=()), notify=("file",), settings=settings, pm=pm, now=NOW)
        assert report.sent == 0 and report.queued == 0
        assert not out.exists()
        assert store.count("outbox") == 0
        report = record_and_notify(
            store, Result(alerts=(alert(),)), notify=("file",), settings=settings, pm=pm, now=NOW
        )
        assert report.sent == 1
        # unchanged second run: nothing due, so no (empty) message either
        report = record_and_notify(
            store, Result(alerts=(alert(),)), notify=("file",), settings=settings, pm=pm, now=NOW
        )
        assert report.sent == 0 and store.count("outbox") == 1
    assert out.read_text() == "KAM101\n"
