"""Masking of personal data; every page, API, admin, export and log uses these."""


def mask_name(name: str) -> str:
    """王小明 -> 王*明, 王明 -> 王*, 欧阳娜娜 -> 欧**娜."""
    if not name:
        return ""
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678."""
    digits = phone.strip()
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) >= 8:
        return "*" * (len(digits) - 4) + digits[-4:]
    return "*" * len(digits)


def mask_national_id(national_id: str) -> str:
    """Any id -> ****1234 (the last four characters only)."""
    value = national_id.strip()
    if len(value) <= 4:
        return "*" * len(value)
    return "****" + value[-4:]
