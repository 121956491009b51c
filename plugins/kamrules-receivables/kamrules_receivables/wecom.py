"""A custom notifier: posts a 回款提醒 (collections reminder) to a WeCom (企业微信) group robot."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from kamrules.lifecycle.notifiers import DueItem, Rendered, time_left

ENV_URL = "KAMRULES_WECOM_WEBHOOK"
SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
REASON_ZH = {"new": "新", "changed": "变化", "reminder": "提醒", "resolved": "已解决"}


@dataclass(frozen=True)
class WeComNotifier:
    """Sends one markdown message per run to the robot URL in ``$KAMRULES_WECOM_WEBHOOK``.

    Only receivables alerts (codes starting with ``prefix``) are routed; the rest
    are left to other notifiers (they are reported as unrouted for this one).
    """

    name: str = "wecom"
    prefix: str = "RCV"
    url_env: str = ENV_URL

    def _url(self) -> str | None:
        url = os.environ.get(self.url_env, "").strip()
        if not url or any(c in url for c in "\r\n ") or not url.startswith(("http://", "https://")):
            return None
        return url

    def route(self, items: Sequence[DueItem], settings):
        url = self._url()
        mine = [it for it in items if it.alert.code.startswith(self.prefix)]
        others = [it for it in items if not it.alert.code.startswith(self.prefix)]
        if url is None:
            return {}, list(items)
        return ({url: mine} if mine else {}), others

    def unrouted_reason(self, item: DueItem, settings) -> str:
        """Why ``route`` left ``item`` out, shown in the check's summary (企业微信 = WeCom)."""
        if not os.environ.get(self.url_env, "").strip():
            return f"${self.url_env} not set: no 企业微信 group robot to post to"
        if self._url() is None:
            return f"${self.url_env} is not an http(s) robot URL"
        return f"not a receivables alert (the 企业微信 group takes {self.prefix}* codes only)"

    def render(self, recipient: str, items: Sequence[DueItem], key: str, as_of: str, settings) -> Rendered:
        firing = [it for it in items if it.status == "firing"]
        subject = f"回款提醒 {as_of}: {len(firing)} 条"
        lines = [f"**{subject}**"]
        for it in sorted(items, key=lambda i: (i.alert.owner or "", i.alert.account_name or "", i.alert.code)):
            a = it.alert
            who = f"{a.account_name}（{a.account_id}）" if a.account_id else "全部客户"
            sev = SEVERITY_ZH.get(a.severity, a.severity)
            lines.append(f"> [{REASON_ZH.get(it.reason, it.reason)}] {who} {a.code} {sev}：{a.message}")
            if it.status == "firing" and a.action:
                lines.append(f"> 建议：{a.action}" + (f"（负责人 {a.owner}）" if a.owner else ""))
        lines.append(f'<font color="comment">key {key}</font>')
        body = {"msgtype": "markdown", "markdown": {"content": "\n".join(lines)}}
        return Rendered(subject=subject, payload=json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def send(self, recipient: str, payload: bytes, settings) -> None:
        req = urllib.request.Request(
            recipient, data=payload, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        left = time_left()  # the notify run's deadline: never wait past it (None outside a run)
        timeout = (
            settings.email.webhook_timeout if left is None else max(min(settings.email.webhook_timeout, left), 0.001)
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = resp.read()
        try:
            errcode = json.loads(answer or b"{}").get("errcode", 0)
        except ValueError:
            errcode = None
        if errcode not in (0, None):
            raise RuntimeError(f"WeCom robot refused the message: errcode {errcode}")
