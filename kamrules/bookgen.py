"""One synthetic account and all its rows (used by kamrules.generate); names, cadences, the defect-recipe hooks."""

from __future__ import annotations

import datetime as dt
import random

from kamrules.vocab import STAGES, TIERS

DWELL = {
    "research": 30,
    "analysis": 30,
    "contact": 30,
    "visit": 45,
    "presentation": 45,
    "proposal": 30,
    "negotiation": 60,
}


class Defect:
    """A defect recipe: how one account is bent so that one rule fires (``kind`` = the rule's name).

    Rule sets contribute recipes through the hook ``register_defect_recipes``. The
    builder (:class:`Account`) calls the methods below at fixed points, in this
    order; the defaults build a healthy account. Override only what the defect
    needs, and draw from ``acc.rng`` only where the default draws (or in your own
    additions), so that other accounts' books do not change.
    """

    kind: str = ""
    tiers: tuple[str, ...] = TIERS  # eligible accounts
    statuses: tuple[str, ...] = ("active",)
    won_days_ago: tuple[int, int] = (200, 1800)  # an active account was won this many days ago
    no_owner: bool = False  # the account has no KA manager (activities recorded by a department)
    reserved_owner: bool = False  # owned by the one owner kept for such accounts (a whole book unsupported)
    attended: bool = True  # a small or mid account gets a visit within the quarter
    ends_cold: bool = False  # the last recorded attitude may be cold
    commitment_target: float = 0.85  # the current commitment's target, times last year's revenue
    surveyed: bool = True  # an active key account has a satisfaction survey within the year
    key_visited: bool = True  # an active key account is met in person within 40 days (seed 001: 定期拜访大客户)
    mixed_owner: bool = False  # a key account given to an owner of mid and small accounts (seed 000)
    claims_lost: bool = False  # also carried by every other healthy lost account of a book with defects
    once: bool = False  # a defect of the whole book: only its first account carries it, none is drawn

    def buyer(self, acc, buyer):
        return buyer

    def segment(self, acc, segment):
        """The account's segment (may also set ``acc.name``)."""
        return segment

    def created_on(self, acc, created):
        """The account's created_on (a date ordinal), before any of its records by default."""
        return created

    def purchasing(self, acc, purchasing):
        return purchasing

    def contact_roles(self, acc, roles):
        return roles

    def relationship(self, acc, age):
        return "establish" if age < 365 else "stabilize" if age < 1000 else "strengthen"

    def prospect_stages(self, acc):
        return list(STAGES[: acc.rng.randint(1, 7)])

    def days_in_stage(self, acc, limit):
        return acc.rng.randint(3, max(4, limit - 8))

    def prospect_path(self, acc, stages, entered, current, limit):
        return stages, entered, current

    def visits_prospect(self, acc, stages):
        return STAGES.index(stages[-1]) >= 3

    def lost_reason(self, acc):
        return acc.rng.choice(LOST_REASONS)

    def channel_kinds(self, acc, kinds):
        return kinds

    def channel_informed(self, acc, kind):
        return True

    def yearly_revenue(self, acc, yearly):
        return yearly

    def growth(self, acc, growth):
        return growth

    def margin_rate(self, acc):
        return acc.rng.uniform(0.15, 0.32)

    def last_order(self, acc, gap):
        return acc.as_of

    def order_factor(self, acc, day, growth):
        return (1 + growth) ** ((day - acc.as_of) / 365)

    def activity_stop(self, acc, end):
        return end

    def decaying(self, acc, day):
        return False

    def no_visit(self, acc, day):
        return False

    def extra_activities(self, acc, acts):
        """After the regular contacts, before the executive meetings."""

    def last_executive_meeting(self, acc):
        return acc.as_of

    def edit_activities(self, acc, acts, stage_entered, end):
        return acts

    def after_orders(self, acc, orders, margin_rate):
        """After orders and activities; True: the account gets no commitments or concessions."""
        return False

    def concession_rate(self, acc, healthy, drawn):
        return healthy

    def quarter_rate(self, acc, end, rate):
        return rate

    def extra_concessions(self, acc, last_year, commitment):
        pass

    def extra_complaints(self, acc):
        pass


class Trap(Defect):
    """A healthy trap: an account bent into a shape a naive rule mistakes for trouble (a seasonal buyer in
    winter, a newly won account with a development cost, a long key-account tender).

    Built like a defect (the same ``Defect`` methods), but healthy by design: ``kind`` names the trap (not
    a rule) and ``quiet`` names the rules it must not trigger (of any loaded rule set). Rule sets contribute
    traps through the hook ``register_defect_recipes``, beside their defects; the generator gives them to
    healthy accounts (``traps`` share).
    """

    quiet: tuple[str, ...] = ()


HEALTHY = Defect()

SURNAMES = (
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("赵", "zhao"),
    ("黄", "huang"),
    ("周", "zhou"),
    ("吴", "wu"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("胡", "hu"),
    ("朱", "zhu"),
    ("高", "gao"),
    ("林", "lin"),
    ("何", "he"),
    ("郭", "guo"),
    ("马", "ma"),
    ("罗", "luo"),
)
GIVEN = (
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("建华", "jianhua"),
    ("志强", "zhiqiang"),
    ("晓东", "xiaodong"),
)
CITIES = ("上海", "深圳", "北京", "杭州", "成都", "武汉", "苏州", "南京", "广州", "天津", "重庆", "西安")
BRAND = "华鑫泰恒达盛源宏远通瑞丰嘉星佳锦海润德兴"
INDUSTRY = ("科技", "电子", "物流", "贸易", "机械", "食品", "医药", "新能源", "包装", "化工", "汽车零部件", "建材")
LATIN = (
    "Acme",
    "Globex",
    "Initech",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Lotus",
    "Pacific",
    "Evergreen",
    "Harbor",
    "Summit",
    "Orion",
    "Apex",
)
LATIN_IND = ("Trading", "Industries", "Logistics", "Electronics", "Foods", "Packaging", "Components", "Retail")
LATIN_SUFFIX = ("Ltd", "Co., Ltd", "GmbH", "Inc.", "Pte Ltd", "Holdings")
SEGMENTS = ("manufacturing", "retail", "energy", "finance", "logistics", "it", "healthcare")
REGIONS = ("华东", "华南", "华北", "西南", "华中", "海外")
LOST_REASONS = ("价格不具竞争力", "客户选择了竞争对手", "项目预算取消", "决策人变动", "技术方案不匹配")
NOTES = (
    "讨论年度采购计划",
    '客户反馈:"价格偏高", 需跟进',
    "介绍新产品线",
    "确认交付时间表",
    "拜访采购部, 气氛良好",
    "处理售后问题",
    "Quarterly business review",
    "跟进报价, 客户需要内部审批",
)

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
    owners: list[tuple[str, str]] = []
    seen: set[str] = set()
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


def pick_profile(rng: random.Random, defect: Defect | None) -> tuple[str, str]:
    """(tier, status): ~10/30/60 % key/mid/small; ~80 % active, 12 % prospects, 8 % lost; fits ``defect``."""
    if defect:
        return rng.choice(defect.tiers), rng.choice(defect.statuses)
    r = rng.random()
    tier = "key" if r < 0.10 else "mid" if r < 0.40 else "small"
    r = rng.random()
    status = "active" if r < 0.80 else "prospect" if r < 0.92 else "lost"
    return tier, status


class Account:
    """Builds one account's rows as tuples in contract column order: ``rows[table] -> list``."""

    def __init__(
        self, acc_id: str, rng: random.Random, as_of: int, tier: str, status: str, defect: Defect | None, owner
    ):
        self.id, self.rng, self.as_of, self.tier, self.status = acc_id, rng, as_of, tier, status
        self.defect = defect or HEALTHY
        self.owner = owner
        self.rows: dict[str, list] = {
            t: []
            for t in (
                "accounts",
                "stage_history",
                "contacts",
                "channels",
                "commitments",
                "activities",
                "orders",
                "concessions",
                "complaints",
            )
        }
        self.seq: dict[str, int] = {}
        self.name, self.domain = company(rng)
        # key accounts get the expensive service (teams, events); small and mid much less
        self.cost_scale = {"key": 5.0, "mid": 0.6, "small": 0.5}[tier]

    def next_id(self, prefix: str) -> str:
        n = self.seq.get(prefix, 0) + 1
        self.seq[prefix] = n
        return f"{self.id}-{prefix}{n}"

    def build(self) -> dict[str, list]:
        rng, d = self.rng, self.defect
        if self.tier == "key":
            buyer = rng.choice(("strategic", "strategic", "consultative"))
        elif self.tier == "mid":
            buyer = rng.choice(("consultative", "consultative", "transactional"))
        else:
            buyer = rng.choice(("transactional", "transactional", "consultative"))
        buyer = d.buyer(self, buyer)
        purchasing = "centralized" if self.tier == "key" or rng.random() < 0.7 else "distributed"
        purchasing = d.purchasing(self, purchasing)
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
            lost_reason = d.lost_reason(self)
        owner, email = self.owner
        if d.no_owner:
            owner, email = None, None
        segment = d.segment(self, rng.choice(SEGMENTS))  # before the name is read: it may rename the account
        self.rows["accounts"].insert(
            0,
            (
                self.id,
                self.name,
                self.tier,
                owner,
                email,
                buyer,
                purchasing,
                segment,
                rng.choice(REGIONS),
                self.status,
                stage,
                iso(since),
                rel,
                lost_reason,
                iso(d.created_on(self, created)),
            ),
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
        roles = d.contact_roles(self, roles)
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
        kinds = {
            "key": ["ka_manager", "technical", "management", "complaint", "executive"],
            "mid": ["ka_manager", "complaint"],
            "small": ["ka_manager"],
        }[self.tier]
        if self.status != "active":
            kinds = ["ka_manager"]
        kinds = d.channel_kinds(self, kinds)
        for kind in kinds:
            informed = d.channel_informed(self, kind)
            contact = (
                self.owner[0]
                if kind == "ka_manager"
                else self.contacts[0][0]
                if kind == "executive"
                else f"{kind}@{self.domain}"
            )
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
            self.rows["complaints"].append(
                (self.next_id("Q"), self.id, iso(opened), iso(closed) if closed <= as_of else None, sev, sev == "high")
            )
        self.steady_complaints()
        d.extra_complaints(self)

    def steady_complaints(self):
        """A healthy record has fewer than 3 complaints in any recent half-year (a rising trend is a defect):
        the newest of a cluster moves 200 days back, closed 5 days later. Nothing is drawn, so the random
        stream (and every other row) stays as it was."""
        rows, as_of = self.rows["complaints"], self.as_of
        while True:
            recent = [i for i, r in enumerate(rows) if dt.date.fromisoformat(r[2]).toordinal() > as_of - 190]
            if len(recent) < 3:
                return
            i = max(recent, key=lambda i: rows[i][2])
            opened = dt.date.fromisoformat(rows[i][2]).toordinal() - 200
            rows[i] = rows[i][:2] + (iso(opened), iso(opened + 5)) + rows[i][4:]

    # -- stages --------------------------------------------------------------
    def history(self, stages, last_entered: int) -> int:
        """Write stage_history for ``stages`` ending at ``last_entered``; returns the first date."""
        rng = self.rng
        dates = [last_entered]
        for _ in stages[:-1]:
            dates.append(dates[-1] - rng.randint(7, 25))
        dates.reverse()
        for stage, day in zip(stages, dates, strict=True):
            self.rows["stage_history"].append((self.id, stage, iso(day)))
        return dates[0]

    def active_history(self, d):
        rng, as_of = self.rng, self.as_of
        won = as_of - rng.randint(*d.won_days_ago)
        first = self.history(STAGES, won)
        self.won = won
        rel = d.relationship(self, as_of - won)
        return "won", won, first - rng.randint(0, 10), rel

    def prospect_history(self, d):
        rng, as_of = self.rng, self.as_of
        stages = d.prospect_stages(self)
        current = stages[-1]
        limit = DWELL[current] * (
            2 if self.tier == "key" else 1
        )  # key accounts get twice the days in a stage (seeds 002, 003)
        entered = as_of - d.days_in_stage(self, limit)
        stages, entered, current = d.prospect_path(self, stages, entered, current, limit)
        first = self.history(stages, entered)
        self.activities(first, as_of, stage_entered=entered, visits=d.visits_prospect(self, stages), d=d)
        return current, entered, first - rng.randint(0, 5)

    def lost_history(self):
        rng, as_of = self.rng, self.as_of
        stages = list(STAGES[: rng.randint(3, 7)])
        lost_on = as_of - rng.randint(60, 400)
        first = self.history(stages, lost_on - rng.randint(5, 20))
        self.activities(first, lost_on, stage_entered=None, visits=True, d=HEALTHY)
        return stages[-1], lost_on, first - rng.randint(0, 5)

    # -- activities --------------------------------------------------------
    def visit(self, day, acts, end, attitude=None):
        """Add a visit on ``day`` (and usually a follow-up call) to ``acts``."""
        rng = self.rng
        contact = rng.choice(self.contacts)[0]
        att = attitude or rng.choices(("warm", "neutral", "cold"), (5, 4, 1))[0]
        acts.append(
            [
                day,
                "visit",
                rng.choice(("management", "operational")),
                contact,
                rng.randint(30, 120),
                att,
                float(rng.randint(200, 800) * self.cost_scale),
                self._note(),
            ]
        )
        follow = day + rng.randint(1, 5)
        if follow <= min(end, self.as_of):
            acts.append(
                [
                    follow,
                    "call",
                    "operational",
                    contact,
                    rng.randint(5, 30),
                    None,
                    float(rng.randint(0, 30)),
                    "拜访后电话跟进",
                ]
            )

    def _note(self):
        rng = self.rng
        return rng.choice(NOTES) if rng.random() < 0.3 else None

    def activities(self, start, end, stage_entered=None, visits=True, d=HEALTHY):
        rng, as_of, tier = self.rng, self.as_of, self.tier
        active = self.status == "active"
        gap = {"key": 6, "mid": 14, "small": 28}[tier] if active else 10
        start = max(start, as_of - 730)
        stop = end
        stop = d.activity_stop(self, stop)
        acts: list[list] = []
        day = start + rng.randint(0, gap)
        while day <= stop:
            decaying = d.decaying(self, day)
            g = gap * 5 if decaying else gap
            kind = rng.choices(("visit", "call", "email", "meeting", "other"), (25, 40, 20, 10, 5))[0]
            if decaying:
                kind = rng.choice(("call", "email"))
            if kind == "visit" and (not visits or d.no_visit(self, day)):
                kind = "call"
            if kind == "visit":
                self.visit(day, acts, end)
            else:
                if kind == "other":
                    kind = rng.choice(("event", "survey")) if active else rng.choice(("presentation", "proposal"))
                contact = rng.choice(self.contacts)[0] if rng.random() < 0.8 else None
                level = "management" if kind in ("meeting", "event", "presentation", "proposal") else "operational"
                att = (
                    rng.choices(("warm", "neutral", "cold"), (5, 4, 1))[0]
                    if kind in ("meeting", "presentation", "proposal")
                    else None
                )
                cost = {
                    "call": 10,
                    "email": 0,
                    "meeting": 600,
                    "event": 2000,
                    "survey": 100,
                    "presentation": 800,
                    "proposal": 300,
                }[kind]
                duration = rng.randint(5, 30) if kind == "call" else None if kind == "email" else rng.randint(45, 180)
                acts.append(
                    [
                        day,
                        kind,
                        level,
                        contact,
                        duration,
                        att,
                        float(cost * self.cost_scale) if kind != "email" else None,
                        self._note(),
                    ]
                )
            day += max(1, int(g * rng.uniform(0.7, 1.3)))
        if active and tier != "key" and d.attended:
            if not any(a[1] == "visit" and a[0] > as_of - 85 for a in acts):  # attended: a visit within the quarter
                self.visit(as_of - rng.randint(20, 80), acts, end)
        d.extra_activities(self, acts)
        if active and tier == "key" and d.surveyed and not any(a[1] == "survey" and a[0] > as_of - 365 for a in acts):
            # a healthy key account is surveyed within the year (seed 001, satisfaction surveys): on a day
            # just inside it (a near miss), fixed by the record, not drawn, so the random stream stays as it was
            day = as_of - 300 - len(acts) % 60
            if day >= start:
                acts.append(
                    [day, "survey", "operational", self.decision_maker, 60, None, float(100 * self.cost_scale), None]
                )
        if active and tier in ("key", "mid"):  # executive meetings with the decision maker
            every = 90 if tier == "key" else 150
            last = d.last_executive_meeting(self)
            day = max(start, as_of - 730) + rng.randint(0, 40)
            while day <= last:
                acts.append(
                    [
                        day,
                        "executive_meeting",
                        "executive",
                        self.decision_maker,
                        rng.randint(60, 180),
                        rng.choice(("warm", "neutral")),
                        float(rng.randint(1000, 5000) * self.cost_scale),
                        None,
                    ]
                )
                day += every + rng.randint(-15, 10)
        if active and tier == "key" and d.key_visited:
            # a healthy key account is met in person regularly (seed 001, 定期拜访大客户): with no visit or
            # meeting in the last 40 days, a meeting with the decision maker just inside the 45-day cadence,
            # on a fixed day (not drawn, so the random stream stays as it was); a meeting, not a visit, so
            # that it needs no follow-up call (the one-week follow-up is about visits)
            met = ("visit", "meeting", "presentation", "executive_meeting")
            if not any(a[1] in met and as_of - 40 < a[0] <= as_of for a in acts):
                day = as_of - 35 - len(acts) % 8
                if day >= start:
                    acts.append(
                        [
                            day,
                            "meeting",
                            "management",
                            self.decision_maker,
                            60,
                            "warm",
                            float(600 * self.cost_scale),
                            None,
                        ]
                    )
        acts = d.edit_activities(self, acts, stage_entered, end)
        acts.sort(key=lambda a: (a[0], a[1]))
        if not d.ends_cold:  # a healthy record never ends on a cold attitude
            for a in reversed(acts):
                if a[5] is not None:
                    if a[5] == "cold":
                        a[5] = "warm"
                    break
        self.acts = acts
        by = self.owner[0] if not d.no_owner else "销售部"
        out = self.rows["activities"]
        for a in acts:
            out.append((self.next_id("V"), self.id, iso(a[0]), a[1], a[2], a[3], by, a[4], a[5], a[6], a[7]))

    # -- orders, commitments, concessions -------------------------------------
    def trade(self, d):
        rng, as_of, tier = self.rng, self.as_of, self.tier
        gap = {"key": 7, "mid": 14, "small": 30}[tier]
        low, high = {"key": (8e6, 6e7), "mid": (8e5, 4e6), "small": (8e4, 4e5)}[tier]
        yearly = rng.uniform(low, high)
        yearly = d.yearly_revenue(self, yearly)
        growth = d.growth(self, rng.uniform(0.06, 0.18))
        margin_rate = d.margin_rate(self)
        start = max(self.won + rng.randint(1, 20), as_of - 730)
        stop = d.last_order(self, gap)
        per_order = yearly * gap / 365
        orders = []
        day = start
        while day <= stop:
            factor = d.order_factor(self, day, growth)
            amount = round(per_order * factor * rng.uniform(0.8, 1.2), 2)
            orders.append((day, amount))
            self.rows["orders"].append(
                (self.next_id("O"), self.id, iso(day), amount, round(amount * margin_rate * rng.uniform(0.9, 1.1), 2))
            )
            day += max(1, int(gap * rng.uniform(0.7, 1.3)))
        self.activities(self.won - 30, as_of, d=d)
        if d.after_orders(self, orders, margin_rate):
            return
        if tier == "small":
            return
        self.commitments_and_concessions(d, orders, start)

    def recost(self, cost):
        """Replace the cost of this account's activities: ``cost(activity) -> cost``."""
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
                target = last_year * d.commitment_target
            else:
                target = sum(a for o, a in orders if s <= o <= s + 364) * 0.85
            year = dt.date.fromordinal(s).year
            self.rows["commitments"].append(
                (cid, self.id, iso(s), iso(s + 364), round(max(target, 1000.0), 2), True, f"合同{year}-{cid[-3:]}.pdf")
            )

        def commitment(day):
            for s, cid in reversed(ids):
                if s <= day:
                    return cid
            return ids[0][1]

        healthy = rng.uniform(0.02, 0.05) if self.tier == "key" else rng.uniform(0.005, 0.015)
        drawn = rng.uniform(0.15, 0.3)  # drawn for every account: the books stay those of earlier releases
        rate = d.concession_rate(self, healthy, drawn)
        # each quarter's concessions are settled the same number of days after its end (one account's
        # habit, 5-25 days): exactly four in any 12-month window, and the book's newest a few days old
        settle = rng.randint(5, 25)
        first = dt.date.fromordinal(start)
        y, q = first.year, (first.month - 1) // 3
        while True:  # calendar quarter ends
            q += 1
            if q == 4:
                y, q = y + 1, 0
            end = dt.date(y, 3 * q + 1, 1).toordinal() - 1 if q else dt.date(y, 1, 1).toordinal() - 1
            if end + settle > as_of:
                break
            if end < start + 30:
                continue
            revenue = sum(a for o, a in orders if end - 91 < o <= end)
            r = d.quarter_rate(self, end, rate)
            if revenue > 0:
                kind = rng.choices(("rebate", "discount", "marketing_support"), (6, 2, 2))[0]
                on = end + settle
                self.rows["concessions"].append(
                    (self.next_id("R"), self.id, iso(on), kind, round(revenue * r, 2), commitment(on))
                )
        d.extra_concessions(self, last_year, commitment)
