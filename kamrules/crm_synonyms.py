"""Common CRM export headers and values (Chinese and English) per contract column: what --suggest-mapping matches."""

from __future__ import annotations

from kamrules.vocab import ENUMS, LABELS

# column -> headers that name it in CRM exports (纷享销客, 销售易, Salesforce China, Excel sheets).
# Compared case-folded, without blanks; a column's own name always matches. Per table where a word
# means different columns (编号 is an order's id in orders, an account's in accounts).
HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "*": {
        "account_id": ("客户编号", "客户ID", "客户id", "客户代码", "Account ID", "AccountId", "Customer ID"),
        "date": ("日期", "Date"),
        "amount": ("金额", "Amount"),
        "kind": ("类型", "Type"),
    },
    "accounts": {
        "id": ("客户编号", "客户ID", "客户代码", "Account ID", "AccountId", "Customer ID", "编号"),
        "name": ("客户名称", "客户名", "公司名称", "企业名称", "Account Name", "Customer Name", "名称"),
        "tier": ("客户级别", "客户等级", "客户分级", "客户类型", "Tier", "Account Tier", "Customer Level", "级别"),
        "owner": ("负责人", "客户负责人", "客户经理", "大客户经理", "销售负责人", "Owner", "Account Owner"),
        "owner_email": ("负责人邮箱", "客户经理邮箱", "Owner Email", "Owner E-mail"),
        "buyer_type": ("客户性质", "购买类型", "采购类型", "Buyer Type"),
        "purchasing": ("采购方式", "采购模式", "Purchasing"),
        "segment": ("行业", "所属行业", "细分市场", "Industry", "Segment"),
        "region": ("区域", "地区", "所属区域", "大区", "Region"),
        "status": ("客户状态", "合作状态", "状态", "Status", "Account Status"),
        "stage": ("销售阶段", "开发阶段", "阶段", "Stage"),
        "stage_since": ("阶段开始日期", "进入阶段日期", "Stage Since"),
        "relationship_stage": ("关系阶段", "Relationship Stage"),
        "lost_reason": ("流失原因", "丢单原因", "Lost Reason"),
        "created_on": ("创建日期", "创建时间", "建档日期", "Created Date", "Created On"),
    },
    "stage_history": {
        "stage": ("阶段", "销售阶段", "Stage"),
        "entered_on": ("进入日期", "变更日期", "Entered On", "Changed On"),
    },
    "contacts": {
        "id": ("联系人编号", "联系人ID", "Contact ID"),
        "name": ("联系人", "联系人姓名", "姓名", "Contact Name", "Name"),
        "role": ("角色", "联系人角色", "职能", "Role"),
        "email": ("邮箱", "电子邮件", "Email", "E-mail"),
        "phone": ("电话", "手机", "手机号", "联系电话", "Phone", "Mobile"),
        "active": ("在职", "是否在职", "有效", "Active"),
    },
    "channels": {
        "kind": ("渠道类型", "沟通渠道", "Channel", "Kind"),
        "contact": ("对接人", "联系人", "Contact"),
        "client_informed": ("客户已知晓", "已告知客户", "Client Informed"),
        "since": ("建立日期", "开始日期", "Since"),
    },
    "activities": {
        "id": ("活动编号", "跟进记录编号", "拜访编号", "Activity ID"),
        "date": ("活动日期", "跟进日期", "拜访日期", "日期", "Date"),
        "kind": ("活动类型", "跟进方式", "拜访类型", "Activity Type", "Type"),
        "level": ("层级", "接触层级", "Level"),
        "contact_id": ("联系人编号", "联系人ID", "Contact ID"),
        "by": ("拜访人", "跟进人", "执行人", "By", "Assigned To"),
        "duration_minutes": ("时长(分钟)", "时长", "分钟", "Duration", "Duration Minutes"),
        "attitude": ("客户态度", "态度", "Attitude"),
        "cost": ("费用", "成本", "Cost"),
        "notes": ("备注", "跟进内容", "拜访记录", "Notes", "Description"),
    },
    "orders": {
        "id": ("订单编号", "订单号", "订单ID", "Order ID", "Order Number"),
        "date": ("下单日期", "订单日期", "成交日期", "Order Date", "Close Date"),
        "amount": ("订单金额", "金额", "销售额", "合同金额", "Amount", "Order Amount"),
        "margin": ("毛利", "毛利额", "Margin", "Gross Margin"),
    },
    "concessions": {
        "id": ("让利编号", "政策编号", "Concession ID"),
        "date": ("日期", "发放日期", "Date"),
        "kind": ("让利类型", "政策类型", "Kind", "Type"),
        "amount": ("让利金额", "金额", "Amount"),
        "commitment_id": ("协议编号", "合同编号", "Commitment ID"),
    },
    "commitments": {
        "id": ("协议编号", "合同编号", "Commitment ID", "Contract ID"),
        "start": ("开始日期", "生效日期", "Start Date", "Start"),
        "end": ("结束日期", "到期日期", "End Date", "End"),
        "target_amount": ("目标金额", "承诺金额", "目标销售额", "Target Amount"),
        "signed": ("已签", "是否签署", "已签署", "Signed"),
        "document": ("协议文件", "合同文件", "Document"),
    },
    "complaints": {
        "id": ("投诉编号", "工单编号", "Complaint ID", "Case ID"),
        "opened_on": ("投诉日期", "受理日期", "创建日期", "Opened On", "Created Date"),
        "closed_on": ("关闭日期", "解决日期", "Closed On", "Closed Date"),
        "severity": ("严重程度", "等级", "优先级", "Severity", "Priority"),
        "escalated": ("已升级", "是否升级", "Escalated"),
    },
}

# enumeration kind (vocab.ENUMS) -> extra source values; the Chinese labels of vocab.LABELS match too.
_EXTRA_VALUES: dict[str, dict[str, str]] = {
    "tier": {
        "重点客户": "key",
        "KA客户": "key",
        "VIP客户": "key",
        "A类客户": "key",
        "B类客户": "mid",
        "C类客户": "small",
    },
    "status": {
        "已合作": "active",
        "成交客户": "active",
        "意向客户": "prospect",
        "流失客户": "lost",
        "已流失客户": "lost",
    },
    "buyer_type": {"交易型": "transactional", "顾问型": "consultative", "战略型": "strategic"},
    "contact_role": {"关键决策人": "decision_maker", "拍板人": "decision_maker", "技术负责人": "technical"},
    "activity_kind": {
        "电话拜访": "call",
        "上门拜访": "visit",
        "高层拜访": "executive_meeting",
        "客户满意度调查": "survey",
    },
    "complaint_severity": {"一般": "low", "较重": "medium", "严重": "high", "紧急": "high"},
}
# contract column -> enumeration kind of vocab.ENUMS (columns whose name is not the kind's name)
COLUMN_KINDS = {
    "role": "contact_role",
    "kind": {"channels": "channel_kind", "activities": "activity_kind", "concessions": "concession_kind"},
    "level": "activity_level",
    "severity": "complaint_severity",
}
# boolean words beyond true/false, yes/no, 1/0, 是/否
BOOLEAN_WORDS = {
    "有": True,
    "无": False,
    "已签": True,
    "未签": False,
    "已升级": True,
    "未升级": False,
    "在职": True,
    "离职": False,
}


def value_synonyms(table: str, column: str) -> dict[str, str]:
    """Known source values -> canonical value for an enumeration column of ``table``."""
    kind: object = COLUMN_KINDS.get(column, column)
    if isinstance(kind, dict):
        kind = kind.get(table)
    if not isinstance(kind, str) or kind not in ENUMS:
        return {}
    out = {labels["zh"]: value for value, labels in LABELS.get(kind, {}).items() if "zh" in labels}
    out.update(_EXTRA_VALUES.get(kind, {}))
    return out
