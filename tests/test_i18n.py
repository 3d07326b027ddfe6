import polib

from tests.helpers import ROOT


def test_every_message_has_a_chinese_translation() -> None:
    po = polib.pofile(str(ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"))
    assert len(po) > 100
    assert [e.msgid for e in po if not e.translated() or "fuzzy" in e.flags] == []


def test_translations_keep_their_placeholders() -> None:
    import re

    placeholder = re.compile(r"%\(\w+\)\w")
    po = polib.pofile(str(ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"))
    for entry in po:
        translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            assert sorted(placeholder.findall(entry.msgid)) == sorted(placeholder.findall(text)), entry.msgid
