"""The file writers alone: text stays text, and what XLSX cannot hold is shown, not dropped."""

import csv

from openpyxl import load_workbook

from compliance.writers import csv_write, xlsx_write


def test_xlsx_keeps_a_text_that_looks_like_a_formula_as_text_and_escapes_control_characters(tmp_path):
    path = tmp_path / "t.xlsx"
    count = xlsx_write(path, sheet="rows", columns=("a", "b", "c"), rows=iter([("=HYPERLINK(\"x\")", "bell\x07", "-1.5")]),
                       summary=[("export", "test")])
    assert count == 1
    sheet = load_workbook(path)["rows"]
    a, b, c = sheet[2]
    assert (a.value, a.data_type) == ('=HYPERLINK("x")', "s")
    assert b.value == "bell\\x07"
    assert (c.value, c.data_type) == ("-1.5", "s")  # exact decimal text, not a float
    assert [[cell.value for cell in row] for row in load_workbook(path)["export"]] == [["export", "test"], ["rows", 1]]


def test_csv_writes_the_preamble_then_the_header_then_the_rows(tmp_path):
    path = tmp_path / "t.csv"
    count = csv_write(path, columns=("a", "b"), rows=iter([("1", 'say "hi", twice')]), preamble=[("head hash", "ab" * 32)])
    assert count == 1
    lines = path.read_text().splitlines()
    assert lines[0] == f"# head hash: {'ab' * 32}"
    assert list(csv.reader(lines[1:])) == [["a", "b"], ["1", 'say "hi", twice']]
