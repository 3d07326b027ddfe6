"""Personal data as pages, exports and logs show it."""

import pytest

from accounts.masking import mask_name, mask_national_id, mask_phone


@pytest.mark.parametrize(
    ("name", "masked"),
    [("王小明", "王*明"), ("王明", "王*"), ("欧阳娜娜", "欧**娜"), ("王", "*"), ("", "")],
)
def test_mask_name_keeps_only_the_first_and_last_characters(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        (" 13812345678 ", "138****5678"),
        ("+8613812345678", "+86*******5678"),
        ("87654321", "****4321"),
        ("1234567", "*******"),
        ("12345", "*****"),
    ],
)
def test_mask_phone_hides_the_middle_digits(phone, masked):
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("national_id", "masked"),
    [("330102199001011234", "****1234"), ("33010219900101123X", "****123X"), ("1234", "****"), ("", "")],
)
def test_mask_national_id_shows_only_the_last_four_characters(national_id, masked):
    assert mask_national_id(national_id) == masked
