"""Unit tests for ingest.text (decode, normalize), ingest.identity and ingest.dates."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import dates
from ingest.text import decode, normalize
from schema.errors import NotAListingError
from schema.identity import (
    is_arxiv_id,
    listing_public_id,
    normalize_arxiv_id,
    paper_public_id,
    title_fingerprint,
)

# --------------------------------------------------------------------------- decode


class TestDecode:
    def test_plain_utf8(self):
        assert decode("Café au lait — 3 µm\n".encode()) == "Café au lait — 3 µm\n"

    def test_utf8_bom_is_stripped(self):
        raw = b"\xef\xbb\xbf" + b"Mar 11\nTitle\n"
        text = decode(raw)
        assert text == "Mar 11\nTitle\n"
        assert not text.startswith("\ufeff")

    @pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
    def test_utf16_with_bom(self, codec):
        bom = b"\xff\xfe" if codec == "utf-16-le" else b"\xfe\xff"
        raw = bom + "Daily Papers\r\nMar 11\r\nÜber Résumé\r\n".encode(codec)
        assert decode(raw) == "Daily Papers\nMar 11\nÜber Résumé\n"

    def test_utf16_generic_codec_output(self):
        # Python's "utf-16" codec writes a BOM in native order.
        raw = "naïve\nline two".encode("utf-16")
        assert decode(raw) == "naïve\nline two"

    def test_crlf_to_lf(self):
        assert decode(b"a\r\nb\r\n\r\nc") == "a\nb\n\nc"

    def test_lone_cr_to_lf(self):
        assert decode(b"a\rb\r\rc\r") == "a\nb\n\nc\n"

    def test_mixed_line_endings(self):
        assert decode(b"one\r\ntwo\rthree\nfour") == "one\ntwo\nthree\nfour"

    def test_crlf_is_one_line_break_not_two(self):
        assert decode(b"x\r\ny").count("\n") == 1

    def test_empty_input(self):
        assert decode(b"") == ""

    def test_no_other_changes(self):
        text = "  Tabs\tand  spaces &amp; entities stay  \n\n\nTrailing   "
        assert decode(text.encode("utf-8")) == text

    def test_invalid_utf8_raises_with_line_number(self):
        raw = b"first line\nsecond line\nthird \xff\xfe line\nfourth"
        with pytest.raises(NotAListingError) as info:
            decode(raw)
        assert info.value.line == 3
        assert "UTF-8" in str(info.value)

    def test_invalid_utf8_on_first_line(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"\xc3(abc")
        assert info.value.line == 1

    def test_invalid_utf8_with_crlf_line_number(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"a\r\nb\r\nc\r\n\x80")
        assert info.value.line == 4

    def test_truncated_multibyte_sequence_at_end(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"ok\nthen \xe2\x82")
        assert info.value.line == 2

    def test_undecodable_input_is_not_a_listing(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"\xff")
        assert info.value.status == 400

    def test_latin1_is_not_accepted(self):
        with pytest.raises(NotAListingError):
            decode("caf\xe9\n".encode("latin-1"))

    def test_nul_bytes_raise(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"line one\nline two\nbinary\x00junk")
        assert info.value.line == 3
        assert "NUL" in str(info.value)

    def test_nul_byte_first_line(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"\x00\x01\x02")
        assert info.value.line == 1

    def test_nul_in_utf16_text_raises(self):
        raw = b"\xff\xfe" + "abc\n\x00def".encode("utf-16-le")
        with pytest.raises(NotAListingError) as info:
            decode(raw)
        assert info.value.line == 2

    def test_utf32_is_rejected_not_garbled(self):
        # A UTF-32 BOM begins like a UTF-16 LE BOM; the NUL bytes give it away.
        with pytest.raises(NotAListingError):
            decode("hello\n".encode("utf-32"))

    def test_truncated_utf16_raises_decode_error(self):
        with pytest.raises(NotAListingError):
            decode(b"\xff\xfe" + "ab".encode("utf-16-le") + b"c")

    def test_invalid_utf8_line_number_with_cr_only_line_ends(self):
        with pytest.raises(NotAListingError) as info:
            decode(b"one\rtwo\rthree \xff")
        assert info.value.line == 3

    @given(st.text())
    @settings(max_examples=200)
    def test_roundtrip_utf8_has_no_cr(self, text):
        if "\x00" in text:
            with pytest.raises(NotAListingError):
                decode(text.encode("utf-8"))
            return
        out = decode(text.encode("utf-8"))
        assert "\r" not in out
        body = text[1:] if text.startswith("\ufeff") else text
        assert out == body.replace("\r\n", "\n").replace("\r", "\n")


# --------------------------------------------------------------------------- normalize


class TestNormalize:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("Tides &amp; Turbidity", "Tides & Turbidity"),
            ("&lt;b&gt; tags &quot;quoted&quot; &#39;x&#39;", "<b> tags \"quoted\" 'x'"),
            ("caf&eacute; &#233; &#xE9;", "café é é"),
            ("A&nbsp;B", "A B"),
        ],
    )
    def test_html_entities_unescaped(self, raw, expected):
        assert normalize(raw) == expected

    def test_entities_unescaped_only_once(self):
        assert normalize("R&amp;amp;D") == "R&amp;D"

    def test_nfc(self):
        decomposed = "Re\u0301sume\u0301 of Ångstro\u0308m"
        out = normalize(decomposed)
        assert out == "Résumé of Ångström"
        assert unicodedata.is_normalized("NFC", out)

    def test_nfc_not_nfkc(self):
        # Compatibility characters (ligatures, superscripts, full-width) are left alone.
        assert normalize("ﬁnd x² \uff21\uff22") == "ﬁnd x² \uff21\uff22"  # full-width A and B

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("  leading and trailing  ", "leading and trailing"),
            ("many    spaces", "many spaces"),
            ("tab\tand\nnewline\r\nand\u00a0nbsp", "tab and newline and nbsp"),
            ("wrapped\nover\nlines", "wrapped over lines"),
            ("\n\t \n", ""),
            ("", ""),
        ],
    )
    def test_whitespace_collapsed(self, raw, expected):
        assert normalize(raw) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "Case Is Kept: LLMs, GPT-4 and BERT",
            "Punctuation (stays) — [intact]; 'quotes' \"too\"?!",
            "Numbers 3.14 and 1e-5 and 50% stay",
            "math: $O(n \\log n)$ and a_b^c",
            "Greek αβγ and CJK 注意力",
            "ﬁ ligature stays",
        ],
    )
    def test_nothing_else_changes(self, value):
        assert normalize(value) == value

    @given(st.text())
    @settings(max_examples=200)
    def test_idempotent_without_entities(self, value):
        once = normalize(value.replace("&", ""))
        assert normalize(once) == once
        assert once == once.strip()
        assert "  " not in once


# --------------------------------------------------------------------------- identity


class TestTitleFingerprint:
    BASE = "Sparse Lattice Adapters for Low-Resource Speech Translation"

    @pytest.mark.parametrize(
        "variant",
        [
            "sparse lattice adapters for low-resource speech translation",
            "SPARSE LATTICE ADAPTERS FOR LOW-RESOURCE SPEECH TRANSLATION",
            "Sparse Lattice Adapters for Low Resource Speech Translation",
            "Sparse Lattice Adapters for Low\u2010Resource Speech Translation.",  # U+2010 HYPHEN
            "Sparse  Lattice\tAdapters for\nLow-Resource Speech Translation",
            "  Sparse Lattice Adapters, for Low-Resource: Speech Translation!  ",
            "Sparse_Lattice_Adapters_for_Low_Resource_Speech_Translation",
            "Sparse Lattice Adapters forLow-ResourceSpeech Translation",
            '"Sparse Lattice Adapters" for (Low-Resource) Speech Translation?',
        ],
    )
    def test_variants_match(self, variant):
        assert title_fingerprint(variant) == title_fingerprint(self.BASE)

    def test_accents_ignored(self):
        assert title_fingerprint("Café Crème: Naïve Résumé Übersicht") == title_fingerprint(
            "Cafe Creme: Naive Resume Ubersicht"
        )

    def test_decomposed_and_composed_match(self):
        assert title_fingerprint("Re\u0301sume\u0301") == title_fingerprint("Résumé")

    def test_compatibility_forms_match(self):
        assert title_fingerprint("ﬁne-tuning") == title_fingerprint("Fine Tuning")

    def test_casefold(self):
        assert title_fingerprint("Straße") == title_fingerprint("STRASSE")

    def test_value(self):
        assert title_fingerprint("Tides & Turbidity: Mapping 2 Plumes") == "tidesturbiditymapping2plumes"

    def test_different_titles_differ(self):
        assert title_fingerprint("Attention Is All You Need") != title_fingerprint("Attention Is Not All You Need")

    def test_digits_matter(self):
        assert title_fingerprint("GPT-3 Evaluation") != title_fingerprint("GPT-4 Evaluation")

    def test_non_latin_scripts_kept(self):
        assert title_fingerprint("注意力 机制") == "注意力机制"
        assert title_fingerprint("Αλφα") == "αλφα"

    @pytest.mark.parametrize("value", ["", "   ", "---", "?!.,;: ()[]", "_ _"])
    def test_no_alnum_gives_empty(self, value):
        assert title_fingerprint(value) == ""

    @given(st.text())
    @settings(max_examples=200)
    def test_fingerprint_is_stable_under_case_and_padding(self, value):
        fp = title_fingerprint(value)
        assert title_fingerprint(f"  {value}  !") == fp
        assert title_fingerprint(fp) == fp
        assert not re.search(r"[\s_]", fp)


class TestPublicIds:
    def test_paper_id_deterministic(self):
        fp = title_fingerprint("Budgeted Tool Use for Language Agents")
        assert paper_public_id(fp) == paper_public_id(fp)
        assert paper_public_id(fp) == paper_public_id(title_fingerprint("budgeted tool-use for language agents"))

    def test_paper_id_format(self):
        pid = paper_public_id("budgetedtooluseforlanguageagents")
        assert re.fullmatch(r"pap_[a-z2-7]{16}", pid), pid

    def test_paper_id_known_value(self):
        # Pin the derivation: ids must be identical in every database and across releases.
        import base64
        import hashlib

        fp = "budgetedtooluseforlanguageagents"
        expected = "pap_" + base64.b32encode(hashlib.sha256(fp.encode()).digest()[:10]).decode().lower()
        assert paper_public_id(fp) == expected

    def test_paper_ids_differ(self):
        fps = ["a", "b", "ab", "ba", "budgetedtooluse", "budgetedtooluseforlanguageagents", "注意力"]
        ids = {paper_public_id(fp) for fp in fps}
        assert len(ids) == len(fps)

    @given(st.text(min_size=1), st.text(min_size=1))
    @settings(max_examples=200)
    def test_paper_ids_differ_property(self, a, b):
        if a != b:
            assert paper_public_id(a) != paper_public_id(b)
        else:
            assert paper_public_id(a) == paper_public_id(b)

    def test_listing_id(self):
        sha_a = "ab" * 32
        sha_b = "cd" * 32
        assert re.fullmatch(r"lst_[a-z2-7]{16}", listing_public_id(sha_a))
        assert listing_public_id(sha_a) == listing_public_id(sha_a.upper())
        assert listing_public_id(sha_a) != listing_public_id(sha_b)

    def test_listing_and_paper_ids_have_distinct_prefixes(self):
        assert paper_public_id("ab" * 32).startswith("pap_")
        assert listing_public_id("ab" * 32).startswith("lst_")


class TestArxivId:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2403.01234", "2403.01234"),
            ("2403.01234v1", "2403.01234"),
            ("2403.01234v12", "2403.01234"),
            ("0704.0001", "0704.0001"),
            ("1501.0001v3", "1501.0001"),
            ("arXiv:2403.01234", "2403.01234"),
            ("arxiv:2403.01234v2", "2403.01234"),
            ("ARXIV:2403.01234", "2403.01234"),
            ("  2403.01234  ", "2403.01234"),
            ("2403.01234\n", "2403.01234"),
            ("cs/0601001", "cs/0601001"),
            ("cs/0601001v2", "cs/0601001"),
            ("hep-th/9901001", "hep-th/9901001"),
            ("arXiv:hep-th/9901001v3", "hep-th/9901001"),
        ],
    )
    def test_valid(self, value, expected):
        assert normalize_arxiv_id(value) == expected
        assert is_arxiv_id(value)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "   ",
            "arXiv:",
            "hello world",
            "2403.123",
            "2403.123456",
            "240.01234",
            "24031.01234",
            "2403-01234",
            "2403.01234v",
            "2403.01234vx",
            "2403.01234 extra",
            "x2403.01234",
            "https://arxiv.org/abs/2403.01234",
            "doi:10.1000/182",
            "cs/060100",
            "cs/06010011",
            "/0601001",
            "0601001",
            "pap_abcdefghijklmnop",
        ],
    )
    def test_garbage_rejected(self, value):
        assert normalize_arxiv_id(value) is None
        assert not is_arxiv_id(value)

    def test_none(self):
        assert normalize_arxiv_id(None) is None

    def test_case_of_legacy_subject_class_does_not_split_identity(self):
        upper = normalize_arxiv_id("math.GT/0309136")
        assert upper is not None
        assert upper == normalize_arxiv_id("math.gt/0309136")
        assert upper.endswith("/0309136")


# --------------------------------------------------------------------------- dates


class TestParseLabel:
    @pytest.mark.parametrize(
        ("label", "expected"),
        [
            ("Mar 11", (3, 11, None)),
            ("Mar 1", (3, 1, None)),
            ("Dec 31", (12, 31, None)),
            ("Jan 01", (1, 1, None)),
            ("March 11", (3, 11, None)),
            ("March 11, 2024", (3, 11, 2024)),
            ("March 11 2024", (3, 11, 2024)),
            ("Mar 11, 2024", (3, 11, 2024)),
            ("Mar. 11", (3, 11, None)),
            ("mar 11", (3, 11, None)),
            ("SEPTEMBER 9", (9, 9, None)),
            ("  May 9  ", (5, 9, None)),
            ("Feb 29", (2, 29, None)),
            ("February 29, 2024", (2, 29, 2024)),
        ],
    )
    def test_valid(self, label, expected):
        assert dates.parse_label(label) == expected

    @pytest.mark.parametrize(
        "label",
        [
            "Feb 30",
            "Feb 31",
            "Apr 31",
            "Mar 32",
            "Mar 0",
            "Feb 29, 2023",
            "February 29, 1900",
            "Marc 11",
            "Foo 11",
            "11 Mar",
            "Mar",
            "Mar 111",
            "Mar 11, 24",
            "Mar 11,2024x",
            "2024-03-11",
            "Daily Papers",
            "new",
            "",
        ],
    )
    def test_invalid(self, label):
        assert dates.parse_label(label) is None


class TestResolve:
    TODAY = dt.date(2026, 11, 23)

    def test_year_wins_over_everything(self):
        got = dates.resolve("Mar 11", year=2023, source_date=dt.date(2020, 1, 2), today=self.TODAY)
        assert got == dt.date(2023, 3, 11)

    def test_year_wins_over_printed_year(self):
        assert dates.resolve("March 11, 2024", year=2023, today=self.TODAY) == dt.date(2023, 3, 11)

    def test_year_with_impossible_day(self):
        assert dates.resolve("Feb 29", year=2023, today=self.TODAY) is None
        assert dates.resolve("Feb 29", year=2024, today=self.TODAY) == dt.date(2024, 2, 29)

    def test_year_may_be_in_the_future(self):
        assert dates.resolve("Dec 31", year=2026, today=self.TODAY) == dt.date(2026, 12, 31)

    def test_printed_year(self):
        got = dates.resolve("March 11, 2024", source_date=dt.date(2020, 1, 2), today=self.TODAY)
        assert got == dt.date(2024, 3, 11)

    def test_source_date_when_no_year(self):
        src = dt.date(2024, 3, 11)
        assert dates.resolve("Mar 11", source_date=src, today=self.TODAY) == src

    def test_source_date_when_no_label(self):
        src = dt.date(2024, 3, 11)
        assert dates.resolve(None, source_date=src, today=self.TODAY) == src
        assert dates.resolve("", source_date=src, today=self.TODAY) == src
        assert dates.resolve(None, year=2020, source_date=src, today=self.TODAY) == src

    def test_source_date_when_label_unreadable(self):
        src = dt.date(2024, 3, 11)
        assert dates.resolve("Daily Papers", source_date=src, today=self.TODAY) == src
        assert dates.resolve("Feb 30", year=2024, source_date=src, today=self.TODAY) == src

    def test_nothing_known(self):
        assert dates.resolve(None, today=self.TODAY) is None
        assert dates.resolve("not a date", today=self.TODAY) is None

    @pytest.mark.parametrize(
        ("label", "expected"),
        [
            ("Dec 31", dt.date(2025, 12, 31)),
            ("Nov 23", dt.date(2026, 11, 23)),
            ("Nov 24", dt.date(2025, 11, 24)),
            ("Nov 22", dt.date(2026, 11, 22)),
            ("Jan 1", dt.date(2026, 1, 1)),
            ("Mar 11", dt.date(2026, 3, 11)),
            ("Feb 29", dt.date(2024, 2, 29)),
        ],
    )
    def test_latest_day_not_after_today(self, label, expected):
        assert dates.resolve(label, today=self.TODAY) == expected

    def test_latest_day_on_new_years_day(self):
        today = dt.date(2026, 1, 1)
        assert dates.resolve("Jan 1", today=today) == dt.date(2026, 1, 1)
        assert dates.resolve("Dec 31", today=today) == dt.date(2025, 12, 31)

    def test_feb_29_on_leap_day(self):
        today = dt.date(2028, 2, 29)
        assert dates.resolve("Feb 29", today=today) == today
        assert dates.resolve("Feb 29", today=dt.date(2028, 2, 28)) == dt.date(2024, 2, 29)

    def test_defaults_to_real_today(self):
        got = dates.resolve("Jan 1")
        today = dt.date.today()
        assert got is not None
        assert got <= today
        assert got.month == 1
        assert got.day == 1
        assert got.year == today.year

    @given(
        st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2090, 12, 31)),
        st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2000, 12, 31)),
    )
    @settings(max_examples=200)
    def test_latest_day_property(self, today, day):
        label = day.strftime("%b ") + str(day.day)
        got = dates.resolve(label, today=today)
        assert got is not None
        assert (got.month, got.day) == (day.month, day.day)
        assert got <= today
        # No later occurrence of the same month/day fits before today.
        for later_year in range(got.year + 1, today.year + 1):
            try:
                later = dt.date(later_year, day.month, day.day)
            except ValueError:
                continue
            assert later > today


# The plain definitions that normalize() and title_fingerprint() implement with fast paths.
_TEXTS = st.text(alphabet=st.sampled_from(" \t\n\x1c\xa0\u2003&amp;#x41;éeé\u0301ßﬁAZaz09_-.")) | st.text()


def _plain_normalize(value: str) -> str:
    import html

    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", html.unescape(value))).strip()


def _plain_fingerprint(title: str) -> str:
    decomposed = unicodedata.normalize("NFKD", title)
    return re.sub(r"[\W_]+", "", "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold())


@given(_TEXTS)
def test_normalize_fast_paths_match_the_plain_definition(value):
    assert normalize(value) == _plain_normalize(value)


@given(_TEXTS)
def test_fingerprint_fast_path_matches_the_plain_definition(value):
    assert title_fingerprint(value) == _plain_fingerprint(value)
