"""Replies to borrowers, per appeal reason and outcome: the reviewer starts from one of these and edits it.

Borrowers read them in Chinese, in an SMS; no personal data and no internal rule names go into them.
"""

from __future__ import annotations

from appeals.models import AppealReason

APPROVE = "approve"
APPROVE_IN_PART = "approve_in_part"
REJECT = "reject"
REQUEST_INFO = "request_info"
OUTCOMES = (APPROVE, APPROVE_IN_PART, REJECT, REQUEST_INFO)

_WHAT_WE_SAW: dict[str, str] = {
    AppealReason.REPAID: "您提交的还款凭证",
    AppealReason.LOANS_CLOSED: "您提交的其他借款结清证明",
    AppealReason.INCOME_PROOF: "您提交的收入证明",
    AppealReason.TRANSFER_EXPLAINED: "您对相关转账的说明和凭证",
    AppealReason.PROFILE_UPDATED: "您更新后的个人信息",
    AppealReason.OTHER: "您提交的说明和材料",
}

_ASK: dict[str, str] = {
    AppealReason.REPAID: "请补充逾期款项的还款凭证（银行流水或还款截图），需能看到还款日期和金额。",
    AppealReason.LOANS_CLOSED: "请补充其他机构出具的借款结清证明，需能看到机构名称和结清日期。",
    AppealReason.INCOME_PROOF: "请补充近 6 个月的工资流水或单位出具的收入证明。",
    AppealReason.TRANSFER_EXPLAINED: "请补充相关转账的用途说明及凭证（如购物订单、还款记录）。",
    AppealReason.PROFILE_UPDATED: "请补充新单位的在职证明或劳动合同首页。",
    AppealReason.OTHER: "请补充能说明情况的材料。",
}


def reply_template(reason: str, outcome: str) -> str:
    seen = _WHAT_WE_SAW.get(reason, _WHAT_WE_SAW[AppealReason.OTHER])
    if outcome == APPROVE:
        return f"经人工复核{seen}，确认相关风险已解除，您的额度已恢复使用。请合理用款、按时还款。"
    if outcome == APPROVE_IN_PART:
        return f"经人工复核{seen}，您的额度已恢复使用，额度调整为 ¥{{limit}}。按时还款、保持良好信用后可申请提额。"
    if outcome == REJECT:
        return f"经人工复核{seen}，暂不能确认相关风险已解除，额度将继续冻结。如有新的证明材料，可再次提交申诉。"
    return _ASK.get(reason, _ASK[AppealReason.OTHER])


def reply_templates(reason: str) -> dict[str, str]:
    return {outcome: reply_template(reason, outcome) for outcome in OUTCOMES}
