"""One synthetic account and all its rows (used by kamrules.generate); names, cadences, defects."""

from __future__ import annotations

import datetime as dt
import random

STAGES = ("research", "analysis", "contact", "visit", "presentation", "proposal", "negotiation", "won")
DWELL = {"research": 30, "analysis": 30, "contact": 30, "visit": 45, "presentation": 45, "proposal": 30, "negotiation": 60}

# defect kind -> (rule set, eligible tiers, eligible statuses). Named after the catalogue's rules.
DEFECTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "concession_ratio": ("over_subsidising", ("key",), ("active",)),
    "uncommitted_concessions": ("over_subsidising", ("key",), ("active",)),
    "commitment_shortfall": ("over_subsidising", ("key",), ("active",)),
    "concessions_outpacing_revenue": ("over_subsidising", ("key",), ("active",)),
    "cost_to_serve": ("over_subsidising", ("small",), ("active",)),
    "negative_net_margin": ("over_subsidising", ("key",), ("active",)),
    "no_recent_contact": ("neglected_small_clients", ("mid", "small"), ("active",)),
    "contact_decay": ("neglected_small_clients", ("mid", "small"), ("active",)),
    "silent_churn": ("neglected_small_clients", ("mid", "small"), ("active",)),
    "rising_star_unattended": ("neglected_small_clients", ("mid", "small"), ("active",)),
    "support_share": ("neglected_small_clients", ("mid", "small"), ("active",)),
    "no_ka_manager": ("missing_escalation_channels", ("key",), ("active",)),
    "single_threaded": ("missing_escalation_channels", ("key",), ("active",)),
    "no_complaint_channel": ("missing_escalation_channels", ("key",), ("active",)),
    "no_executive_meeting": ("missing_escalation_channels", ("key",), ("active",)),
    "no_decision_maker": ("missing_escalation_channels", ("key",), ("active",)),
    "complaint_unresolved": ("missing_escalation_channels", ("key", "mid", "small"), ("active",)),
    "stage_dwell": ("stalled_stages", ("key", "mid", "small"), ("prospect",)),
    "no_follow_up": ("stalled_stages", ("key", "mid", "small"), ("active", "prospect")),
    "incomplete_visit_record": ("stalled_stages", ("key", "mid", "small"), ("active", "prospect")),
    "stage_regression": ("stalled_stages", ("key", "mid", "small"), ("prospect",)),
    "stage_skipped": ("stalled_stages", ("key", "mid", "small"), ("prospect",)),
    "cold_streak": ("stalled_stages", ("key", "mid", "small"), ("prospect",)),
    "lost_without_reason": ("stalled_stages", ("key", "mid", "small"), ("lost",)),
    "relationship_stuck": ("stalled_stages", ("key",), ("active",)),
}
KINDS = tuple(DEFECTS)
LONG_HISTORY = {"concession_ratio", "concessions_outpacing_revenue", "rising_star_unattended", "contact_decay", "silent_churn", "relationship_stuck"}

SURNAMES = (("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"), ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu"), ("徐", "xu"), ("孙", "sun"), ("胡", "hu"), ("朱", "zhu"), ("高", "gao"), ("林", "lin"), ("何", "he"), ("郭", "guo"), ("马", "ma"), ("罗", "luo"))
GIVEN = (("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"), ("建华", "jianhua"), ("志强", "zhiqiang"), ("晓东", "xiaodong"))
CITIES = ("上海", "深圳", "北京", "杭州", "成都", "武汉", "苏州", "南京", "广州", "天津", "重庆", "西安")
BRAND = "华鑫泰恒达盛源宏远通瑞丰嘉星佳锦海润德兴"
INDUSTRY = ("科技", "电子", "物流", "贸易", "机械", "食品", "医药", "新能源", "包装", "化工", "汽车零部件", "建材")
LATIN = ("Acme", "Globex", "Initech", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Lotus", "Pacific", "Evergreen", "Harbor", "Summit", "Orion", "Apex")
LATIN_IND = ("Trading", "Industries", "Logistics", "Electronics", "Foods", "Packaging", "Components", "Retail")
LATIN_SUFFIX = ("Ltd", "Co., Ltd", "GmbH", "Inc.", "Pte Ltd", "Holdings")
SEGMENTS = ("manufacturing", "retail", "energy", "finance", "logistics", "it", "healthcare")
REGIONS = ("华东", "华南", "华北", "西南", "华中", "海外")
LOST_REASONS = ("价格不具竞争力", "客户选择了竞争对手", "项目预算取消", "决策人变动", "技术方案不匹配")
NOTES = ("讨论年度采购计划", "客户反馈:\"价格偏高\", 需跟进", "介绍新产品线", "确认交付时间表", "拜访采购部, 气氛良好", "处理售后问题", "Quarterly business review", "跟进报价, 客户需要内部审批")

_ISO: dict[int, str] = {}


def iso(ordinal: int) -> str:
    s = _ISO.get(ordinal)
    if s is None:
        s = _ISO[ordinal] = dt.date.fromordinal(ordinal).isoformat()
    return s


def person(rng: random.Random) -> tuple[str, str]:
    s, sp = rng.choice(SURNAMES)
    g, gp = rng.choice(GIVEN)
    return s + g, f"{gp}.{sp}"


def make_owners(n: int, rng: random.Random) -> list[tuple[str, str]]:
    owners, seen = [], set()
    while len(owners) < n:
        name, py = person(rng)
        k = 1
        email = f"{py}@kam.example.com"
        while email in seen:
            k += 1
            email = f"{py}{k}@kam.example.com"
        seen.add(email)
        owners.append((name if k == 1 else f"{name}{k}", email))
    return owners


def company(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.7:
        brand = rng.choice(BRAND) + rng.choice(BRAND)
        name = rng.choice(CITIES) + brand + rng.choice(INDUSTRY) + rng.choice(("有限公司", "有限公司", "股份有限公司"))
        return name, "example.cn"
    brand = rng.choice(LATIN)
    return f"{brand} {rng.choice(LATIN_IND)} {rng.choice(LATIN_SUFFIX)}", brand.lower() + ".example.com"


def pick_profile(rng: random.Random, defect: str | None) -> tuple[str, str]:
    """(tier, status): ~10/30/60 % key/mid/small; ~80 % active, 12 % prospects, 8 % lost; fits ``defect``."""
    if defect:
        _, tiers, statuses = DEFECTS[defect]
        return rng.choice(tiers), rng.choice(statuses)
    r = rng.random()
    tier = "key" if r < 0.10 else "mid" if r < 0.40 else "small"
    r = rng.random()
    status = "active" if r < 0.80 else "prospect" if r < 0.92 else "lost"
    return tier, status


class Account:
    """Builds one account's rows as tuples in contract column order: ``rows[table] -> list``."""

    def __init__(self, acc_id: str, rng: random.Random, as_of: int, tier: str, status: str, defect: str | None, owner):
        self.id, self.rng, self.as_of, self.tier, self.status, self.defect = acc_id, rng, as_of, tier, status, defect
        self.owner = owner
        self.rows: dict[str, list] = {t: [] for t in ("accounts", "stage_history", "contacts", "channels", "commitments", "activities", "orders", "concessions", "complaints")}
        self.seq: dict[str, int] = {}
        self.name, self.domain = company(rng)
        # key accounts get the expensive service (teams, events); small and mid much less
        self.cost_scale = {"key": 5.0, "mid": 0.6, "small": 0.5}[tier]

    def next_id(self, prefix: str) -> str:
        n = self.seq.get(prefix, 0) + 1
        self.seq[prefix] = n
        return f"{self.id}-{prefix}{n}"

    def build(self) -> dict[str, list]:
        rng, d, as_of = self.rng, self.defect, self.as_of
        if self.tier == "key":
            buyer = rng.choice(("strategic", "strategic", "consultative"))
        elif self.tier == "mid":
            buyer = rng.choice(("consultative", "consultative", "transactional"))
        else:
            buyer = rng.choice(("transactional", "transactional", "consultative"))
        if d == "cost_to_serve":
            buyer = "transactional"
        purchasing = "centralized" if self.tier == "key" or rng.random() < 0.7 else "distributed"
        self.contacts_for(d)
        if self.status == "active":
            stage, since, created, rel = self.active_history(d)
            lost_reason = None
        elif self.status == "prospect":
            stage, since, created = self.prospect_history(d)
            rel, lost_reason = None, None
        else:
            stage, since, created = self.lost_history()
            rel = None
            lost_reason = None if d == "lost_without_reason" else rng.choice(LOST_REASONS)
        owner, email = self.owner
        if d == "no_ka_manager":
            owner, email = None, None
        self.rows["accounts"].insert(
            0,
            (self.id, self.name, self.tier, owner, email, buyer, purchasing, rng.choice(SEGMENTS), rng.choice(REGIONS),
             self.status, stage, iso(since), rel, lost_reason, iso(created)),
        )
        self.channels_for(d)
        if self.status == "active":
            self.trade(d)
        self.complaints_for(d)
        return self.rows

    # -- people and channels ----------------------------------------------
    def contacts_for(self, d):
        rng = self.rng
        n = {"key": rng.randint(4, 7), "mid": rng.randint(2, 4), "small": rng.randint(1, 2)}[self.tier]
        roles = ["decision_maker", "executive", "technical", "procurement", "user", "other", "technical"][:n]
        if d == "no_decision_maker":
            roles = ["executive" if r == "decision_maker" else r for r in roles]
        self.contacts = []
        for role in roles:
            name, py = person(rng)
            cid = self.next_id("P")
            self.contacts.append((cid, role))
            phone = f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}"
            self.rows["contacts"].append((cid, self.id, name, role, f"{py}@{self.domain}", phone, True))
        self.decision_maker = next((c for c, r in self.contacts if r == "decision_maker"), self.contacts[0][0])

    def channels_for(self, d):
        rng, rows = self.rng, self.rows["channels"]
        since = iso(self.as_of - rng.randint(200, 900))
        kinds = {"key": ["ka_manager", "technical", "management", "complaint", "executive"], "mid": ["ka_manager", "complaint"], "small": ["ka_manager"]}[self.tier]
        if self.status != "active":
            kinds = ["ka_manager"]
        if d == "single_threaded":
            kinds = [k for k in kinds if k != rng.choice(("technical", "management"))]
        if d == "no_complaint_channel" and rng.random() < 0.5:
            kinds.remove("complaint")
        for kind in kinds:
            informed = not (d == "no_complaint_channel" and kind == "complaint")
            contact = self.owner[0] if kind == "ka_manager" else self.contacts[0][0] if kind == "executive" else f"{kind}@{self.domain}"
            rows.append((self.id, kind, contact, informed, since))

    def complaints_for(self, d):
        if self.status != "active":
            return
        rng, as_of = self.rng, self.as_of
        rate = {"key": 2, "mid": 1, "small": 0.3}[self.tier]
        n = int(rate * 2) + (rng.random() < (rate * 2) % 1)
        for _ in range(n):
            opened = as_of - rng.randint(0, 720)
            closed = opened + rng.randint(1, 10)
            sev = rng.choice(("low", "medium", "medium", "high"))
            self.rows["complaints"].append((self.next_id("Q"), self.id, iso(opened), iso(closed) if closed <= as_of else None, sev, sev == "high"))
        if d == "complaint_unresolved":
            self.rows["complaints"].append((self.next_id("Q"), self.id, iso(as_of - rng.randint(35, 120)), None, rng.choice(("medium", "high")), False))

    # -- stages --------------------------------------------------------------
    def history(self, stages, last_entered: int) -> int:
        """Write stage_history for ``stages`` ending at ``last_entered``; returns the first date."""
        rng = self.rng
        dates = [last_entered]
        for _ in stages[:-1]:
            dates.append(dates[-1] - rng.randint(7, 25))
        dates.reverse()
        for stage, day in zip(stages, dates):
            self.rows["stage_history"].append((self.id, stage, iso(day)))
        return dates[0]

    def active_history(self, d):
        rng, as_of = self.rng, self.as_of
        if d == "relationship_stuck":
            won = as_of - rng.randint(420, 900)
        elif d in LONG_HISTORY or d in DEFECTS and DEFECTS[d][0] == "over_subsidising":
            won = as_of - rng.randint(760, 1800)
        else:
            won = as_of - rng.randint(200, 1800)
        first = self.history(STAGES, won)
        self.won = won
        age = as_of - won
        rel = "establish" if age < 365 or d == "relationship_stuck" else "stabilize" if age < 1000 else "strengthen"
        return "won", won, first - rng.randint(0, 10), rel

    def prospect_history(self, d):
        rng, as_of = self.rng, self.as_of
        if d == "stage_skipped":
            stages = ["research", "contact", rng.choice(("proposal", "negotiation"))]
        else:
            stages = list(STAGES[: rng.randint(1, 7)])
        current = stages[-1]
        limit = DWELL[current]
        entered = as_of - (int(limit * rng.uniform(1.5, 3)) if d == "stage_dwell" else rng.randint(3, max(4, limit - 8)))
        if d == "stage_regression":
            stages = list(STAGES[:6]) + ["presentation"]
            entered = as_of - rng.randint(10, 40)
            current = "presentation"
        if d == "cold_streak":
            entered = as_of - rng.randint(22, min(28, limit - 2) if limit > 24 else 24)
        first = self.history(stages, entered)
        self.activities(first, as_of, stage_entered=entered, visits=(d != "stage_skipped" and STAGES.index(stages[-1]) >= 3), d=d)
        return current, entered, first - rng.randint(0, 5)

    def lost_history(self):
        rng, as_of = self.rng, self.as_of
        stages = list(STAGES[: rng.randint(3, 7)])
        lost_on = as_of - rng.randint(60, 400)
        first = self.history(stages, lost_on - rng.randint(5, 20))
        self.activities(first, lost_on, stage_entered=None, visits=True, d=None)
        return stages[-1], lost_on, first - rng.randint(0, 5)

    # -- activities --------------------------------------------------------
    def _visit(self, day, acts, end, attitude=None):
        rng = self.rng
        contact = rng.choice(self.contacts)[0]
        att = attitude or rng.choices(("warm", "neutral", "cold"), (5, 4, 1))[0]
        acts.append([day, "visit", rng.choice(("management", "operational")), contact, rng.randint(30, 120), att, float(rng.randint(200, 800) * self.cost_scale), self._note()])
        follow = day + rng.randint(1, 5)
        if follow <= min(end, self.as_of):
            acts.append([follow, "call", "operational", contact, rng.randint(5, 30), None, float(rng.randint(0, 30)), "拜访后电话跟进"])

    def _note(self):
        rng = self.rng
        return rng.choice(NOTES) if rng.random() < 0.3 else None

    def activities(self, start, end, stage_entered=None, visits=True, d=None):
        rng, as_of, tier = self.rng, self.as_of, self.tier
        active = self.status == "active"
        gap = {"key": 6, "mid": 14, "small": 28}[tier] if active else 10
        start = max(start, as_of - 730)
        stop = end
        if d == "no_recent_contact":
            stop = as_of - rng.randint((60 if tier == "mid" else 120) + 30, (60 if tier == "mid" else 120) + 200)
        acts: list[list] = []
        day = start + rng.randint(0, gap)
        while day <= stop:
            decaying = d == "contact_decay" and day > as_of - 183
            g = gap * 5 if decaying else gap
            kind = rng.choices(("visit", "call", "email", "meeting", "other"), (25, 40, 20, 10, 5))[0]
            if decaying:
                kind = rng.choice(("call", "email"))
            if kind == "visit" and (not visits or (d == "rising_star_unattended" and day > as_of - 130)):
                kind = "call"
            if kind == "visit":
                self._visit(day, acts, end)
            else:
                if kind == "other":
                    kind = rng.choice(("event", "survey")) if active else rng.choice(("presentation", "proposal"))
                contact = rng.choice(self.contacts)[0] if rng.random() < 0.8 else None
                level = "management" if kind in ("meeting", "event", "presentation", "proposal") else "operational"
                att = rng.choices(("warm", "neutral", "cold"), (5, 4, 1))[0] if kind in ("meeting", "presentation", "proposal") else None
                cost = {"call": 10, "email": 0, "meeting": 600, "event": 2000, "survey": 100, "presentation": 800, "proposal": 300}[kind]
                duration = rng.randint(5, 30) if kind == "call" else None if kind == "email" else rng.randint(45, 180)
                acts.append([day, kind, level, contact, duration, att, float(cost * self.cost_scale) if kind != "email" else None, self._note()])
            day += max(1, int(g * rng.uniform(0.7, 1.3)))
        if active and tier != "key" and d not in ("rising_star_unattended", "no_recent_contact", "contact_decay"):
            if not any(a[1] == "visit" and a[0] > as_of - 85 for a in acts):  # attended: a visit within the quarter
                self._visit(as_of - rng.randint(20, 80), acts, end)
        if d == "contact_decay":
            acts.append([as_of - rng.randint(1, 25), "call", "operational", self.contacts[0][0], 15, None, 10.0, None])
        if active and tier in ("key", "mid"):  # executive meetings with the decision maker
            every = 90 if tier == "key" else 150
            last = as_of - 250 if d == "no_executive_meeting" else as_of
            day = max(start, as_of - 730) + rng.randint(0, 40)
            while day <= last:
                acts.append([day, "executive_meeting", "executive", self.decision_maker, rng.randint(60, 180), rng.choice(("warm", "neutral")), float(rng.randint(1000, 5000) * self.cost_scale), None])
                day += every + rng.randint(-15, 10)
        if d == "no_follow_up":
            v = as_of - rng.randint(15, 60)
            acts = [a for a in acts if not v <= a[0] <= v + 7]
            acts.append([v, "visit", "management", rng.choice(self.contacts)[0], rng.randint(30, 90), "neutral", 400.0, None])
        if d == "incomplete_visit_record":
            v = as_of - rng.randint(10, 50)
            self._visit(v, acts, end, "neutral")
            visit = next(a for a in acts if a[0] == v and a[1] == "visit")
            visit[rng.choice((3, 4, 5))] = None
        if d == "cold_streak":
            acts = [a for a in acts if a[0] <= stage_entered or a[5] is None]
            for k in range(rng.randint(3, 4)):
                self._visit(stage_entered + 3 + k * 5, acts, end, "cold")
        acts.sort(key=lambda a: (a[0], a[1]))
        if d != "cold_streak":  # a healthy record never ends on a cold attitude
            for a in reversed(acts):
                if a[5] is not None:
                    if a[5] == "cold":
                        a[5] = "warm"
                    break
        self.acts = acts
        by = self.owner[0] if d != "no_ka_manager" else "销售部"
        out = self.rows["activities"]
        for a in acts:
            out.append((self.next_id("V"), self.id, iso(a[0]), a[1], a[2], a[3], by, a[4], a[5], a[6], a[7]))

    # -- orders, commitments, concessions -------------------------------------
    def trade(self, d):
        rng, as_of, tier = self.rng, self.as_of, self.tier
        gap = {"key": 7, "mid": 14, "small": 30}[tier]
        yearly = {"key": (8e6, 6e7), "mid": (8e5, 4e6), "small": (8e4, 4e5)}[tier]
        yearly = rng.uniform(*yearly)
        if d == "support_share":  # a mis-tiered big earner that gets no support at all
            yearly = rng.uniform(2.5e7, 6e7)
        growth = rng.uniform(0.06, 0.18)
        if d == "rising_star_unattended":
            growth = rng.uniform(1.0, 1.6)
        elif d == "concessions_outpacing_revenue":
            growth = -0.25
        margin_rate = rng.uniform(0.02, 0.04) if d == "negative_net_margin" else rng.uniform(0.25, 0.35) if d == "support_share" else rng.uniform(0.15, 0.32)
        start = max(self.won + rng.randint(1, 20), as_of - 730)
        stop = as_of - gap * rng.randint(4, 8) if d == "silent_churn" else as_of
        per_order = yearly * gap / 365
        orders = []
        day = start
        while day <= stop:
            if d == "rising_star_unattended":
                factor = 1.0 if day <= as_of - 365 else 1 + growth
            else:
                factor = (1 + growth) ** ((day - as_of) / 365)
            amount = round(per_order * factor * rng.uniform(0.8, 1.2), 2)
            orders.append((day, amount))
            self.rows["orders"].append((self.next_id("O"), self.id, iso(day), amount, round(amount * margin_rate * rng.uniform(0.9, 1.1), 2)))
            day += max(1, int(gap * rng.uniform(0.7, 1.3)))
        self.activities(self.won - 30, as_of, d=d)
        if d == "cost_to_serve":
            margin_12m = sum(a for o, a in orders if o > as_of - 365) * margin_rate
            recent = [a for a in self.acts if a[0] > as_of - 365] or self.acts
            each = round(margin_12m * rng.uniform(0.6, 0.9) / max(len(recent), 1), 2)
            self._recost(lambda a: each if a[0] > as_of - 365 else a[6])
        if d == "support_share":
            self._recost(lambda a: None)
            return
        if tier == "small":
            return
        self.commitments_and_concessions(d, orders, start)

    def _recost(self, cost):
        out = self.rows["activities"]
        for i, a in enumerate(self.acts):
            row = out[-len(self.acts) + i]
            out[-len(self.acts) + i] = row[:9] + (cost(a),) + row[10:]

    def commitments_and_concessions(self, d, orders, start):
        rng, as_of = self.rng, self.as_of
        cur_start = as_of - rng.randint(60, 300)
        periods = []
        s = cur_start
        while s + 364 >= start - 100:
            periods.append(s)
            s -= 365
        periods.reverse()
        last_year = sum(a for o, a in orders if o > as_of - 365)
        ids = []
        for s in periods:
            cid = self.next_id("K")
            ids.append((s, cid))
            if s == cur_start:
                target = last_year * (2.5 if d == "commitment_shortfall" else 0.85)
            else:
                target = sum(a for o, a in orders if s <= o <= s + 364) * 0.85
            year = dt.date.fromordinal(s).year
            self.rows["commitments"].append((cid, self.id, iso(s), iso(s + 364), round(max(target, 1000.0), 2), True, f"合同{year}-{cid[-3:]}.pdf"))

        def commitment(day):
            for s, cid in reversed(ids):
                if s <= day:
                    return cid
            return ids[0][1]

        healthy = rng.uniform(0.02, 0.05) if self.tier == "key" else rng.uniform(0.005, 0.015)
        rate = {"concession_ratio": rng.uniform(0.15, 0.3), "negative_net_margin": 0.07}.get(d, healthy)
        first = dt.date.fromordinal(start)
        y, q = first.year, (first.month - 1) // 3
        while True:  # calendar quarter ends: exactly four in any 12-month window
            q += 1
            if q == 4:
                y, q = y + 1, 0
            end = dt.date(y, 3 * q + 1, 1).toordinal() - 1 if q else dt.date(y, 1, 1).toordinal() - 1
            if end > as_of:
                break
            if end < start + 30:
                continue
            revenue = sum(a for o, a in orders if end - 91 < o <= end)
            r = rate
            if d == "concessions_outpacing_revenue":
                r = 0.05 if end > as_of - 365 else 0.03
            if revenue > 0:
                kind = rng.choices(("rebate", "discount", "marketing_support"), (6, 2, 2))[0]
                self.rows["concessions"].append((self.next_id("R"), self.id, iso(end), kind, round(revenue * r, 2), commitment(end)))
        if d == "commitment_shortfall":
            day = as_of - rng.randint(5, 40)
            self.rows["concessions"].append((self.next_id("R"), self.id, iso(day), "rebate", round(last_year * 0.01, 2), commitment(day)))
        if d == "uncommitted_concessions":
            for _ in range(rng.randint(1, 3)):
                day = as_of - rng.randint(10, 300)
                self.rows["concessions"].append((self.next_id("R"), self.id, iso(day), rng.choice(("marketing_support", "free_service")), round(last_year * rng.uniform(0.005, 0.02), 2), None))
