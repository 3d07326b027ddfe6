"""The default ruleset (version 1): DESIGN.md's four signal families with their thresholds.

Thresholds are data: a new version is a new RuleSet row, never a code change.
"""

DEFAULT_RULES = [
    {
        "code": "MULTI_HEAD",
        "severity": "high",
        "action": "freeze",
        "params": {"window_days": 30, "min_inquiries": 4, "min_institutions": 3},
    },
    {
        "code": "OVERDUE",
        "severity": "high",
        "action": "freeze",
        "params": {"min_days_past_due": 30, "reminder_min_days_past_due": 1},
    },
    {
        "code": "ABNORMAL_USE",
        "severity": "high",
        "action": "freeze",
        "params": {
            "window_days": 7,
            "min_share": "0.5",
            "categories": ["securities", "futures", "crypto", "gambling"],
            "lookback_days": 90,
        },
    },
    {
        "code": "PROFILE_STALE",
        "severity": "medium",
        "action": "cut",
        "params": {"min_income_drop": "0.3", "grace_days": 60, "lookback_days": 365, "cut_ratio": "0.5"},
    },
]
