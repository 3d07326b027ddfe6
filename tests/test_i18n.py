from pathlib import Path

import polib

ROOT = Path(__file__).resolve().parent.parent


def test_every_message_has_a_chinese_translation() -> None:
    po = polib.pofile(str(ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"))
    assert len(po) > 100
    assert [e.msgid for e in po if not e.translated() or "fuzzy" in e.flags] == []


def test_translations_keep_their_placeholders() -> None:
    import re

    po = polib.pofile(str(ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"))
    for entry in po:
        assert sorted(re.findall(r"%\(\w+\)s", entry.msgid)) == sorted(re.findall(r"%\(\w+\)s", entry.msgstr)), (
            entry.msgid
        )
