"""The domain's enumerations, defined once: tiers, severities, statuses, stages, kinds (see docs/data-contract.md)."""

from __future__ import annotations

TIERS = ("key", "mid", "small")
SEVERITIES = ("info", "warning", "critical")  # in rising order: a rank is an index
STATUSES = ("prospect", "active", "lost")
STAGES = (
    "research",
    "analysis",
    "contact",
    "visit",
    "presentation",
    "proposal",
    "negotiation",
    "won",
)  # pipeline order
RELATIONSHIP_STAGES = ("establish", "stabilize", "strengthen")
BUYER_TYPES = ("transactional", "consultative", "strategic")
PURCHASING = ("centralized", "distributed")
CONTACT_ROLES = ("decision_maker", "executive", "technical", "procurement", "user", "other")
CHANNEL_KINDS = ("ka_manager", "technical", "management", "complaint", "executive")
ACTIVITY_KINDS = (
    "visit",
    "call",
    "email",
    "meeting",
    "executive_meeting",
    "presentation",
    "proposal",
    "event",
    "survey",
    "other",
)
ACTIVITY_LEVELS = ("executive", "management", "operational")
ATTITUDES = ("warm", "neutral", "cold")
CONCESSION_KINDS = ("rebate", "discount", "marketing_support", "free_service", "extended_credit", "other")
COMPLAINT_SEVERITIES = ("low", "medium", "high")
ALERT_STATUSES = ("firing", "resolved", "silenced")  # an alert in the history (kamrules.lifecycle)


# Labels for people, next to each value: kind -> value -> {language: label} (kamrules.i18n.label).
# English shows the value itself. A new language adds its label to each value here.
LABELS: dict[str, dict[str, dict[str, str]]] = {
    "severity": {"critical": {"zh": "严重"}, "warning": {"zh": "警告"}, "info": {"zh": "提示"}},
    "tier": {"key": {"zh": "大客户"}, "mid": {"zh": "中型客户"}, "small": {"zh": "小客户"}},
    "status": {"prospect": {"zh": "潜在客户"}, "active": {"zh": "合作中"}, "lost": {"zh": "已流失"}},
    "stage": {
        "research": {"zh": "资料收集"},
        "analysis": {"zh": "客户分析"},
        "contact": {"zh": "接触客户"},
        "visit": {"zh": "拜访"},
        "presentation": {"zh": "产品说明"},
        "proposal": {"zh": "建议书"},
        "negotiation": {"zh": "商务谈判"},
        "won": {"zh": "签约"},
    },
    "relationship_stage": {
        "establish": {"zh": "建立关系"},
        "stabilize": {"zh": "稳定关系"},
        "strengthen": {"zh": "加强关系"},
    },
    "buyer_type": {
        "transactional": {"zh": "交易型客户"},
        "consultative": {"zh": "顾问型客户"},
        "strategic": {"zh": "战略型客户"},
    },
    "purchasing": {"centralized": {"zh": "统一采购"}, "distributed": {"zh": "分散采购"}},
    "contact_role": {
        "decision_maker": {"zh": "决策人"},
        "executive": {"zh": "高层"},
        "technical": {"zh": "技术"},
        "procurement": {"zh": "采购"},
        "user": {"zh": "使用人"},
        "other": {"zh": "其他"},
    },
    "channel_kind": {
        "ka_manager": {"zh": "大客户经理"},
        "technical": {"zh": "技术渠道"},
        "management": {"zh": "管理层渠道"},
        "complaint": {"zh": "投诉渠道"},
        "executive": {"zh": "高层渠道"},
    },
    "activity_kind": {
        "visit": {"zh": "拜访"},
        "call": {"zh": "电话"},
        "email": {"zh": "邮件"},
        "meeting": {"zh": "会议"},
        "executive_meeting": {"zh": "高层会面"},
        "presentation": {"zh": "产品说明"},
        "proposal": {"zh": "建议书"},
        "event": {"zh": "活动"},
        "survey": {"zh": "满意度调查"},
        "other": {"zh": "其他"},
    },
    "activity_level": {"executive": {"zh": "高层"}, "management": {"zh": "管理层"}, "operational": {"zh": "执行层"}},
    "attitude": {"warm": {"zh": "热心"}, "neutral": {"zh": "一般"}, "cold": {"zh": "冷淡"}},
    "concession_kind": {
        "rebate": {"zh": "返利"},
        "discount": {"zh": "折扣"},
        "marketing_support": {"zh": "市场支持"},
        "free_service": {"zh": "免费服务"},
        "extended_credit": {"zh": "延长账期"},
        "other": {"zh": "其他"},
    },
    "complaint_severity": {"low": {"zh": "低"}, "medium": {"zh": "中"}, "high": {"zh": "高"}},
    # the lifecycle of an alert in the history (kamrules.lifecycle)
    "alert_status": {"firing": {"zh": "未解除"}, "resolved": {"zh": "已解除"}, "silenced": {"zh": "已静默"}},
}
# which enumeration each kind labels (tests check every value has a label in every language)
ENUMS = {
    "severity": SEVERITIES,
    "tier": TIERS,
    "status": STATUSES,
    "stage": STAGES,
    "relationship_stage": RELATIONSHIP_STAGES,
    "buyer_type": BUYER_TYPES,
    "purchasing": PURCHASING,
    "contact_role": CONTACT_ROLES,
    "channel_kind": CHANNEL_KINDS,
    "activity_kind": ACTIVITY_KINDS,
    "activity_level": ACTIVITY_LEVELS,
    "attitude": ATTITUDES,
    "concession_kind": CONCESSION_KINDS,
    "complaint_severity": COMPLAINT_SEVERITIES,
    "alert_status": ALERT_STATUSES,
}
