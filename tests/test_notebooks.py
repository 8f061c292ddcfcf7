"""The committed lessons: shape (badge, setup cell, Checks) and outputs from a clean top-to-bottom run.

Executing the lessons is nbval's job (``make test`` runs ``pytest --nbval-lax notebooks`` in the
quick profile, offline: see conftest.py). This file checks what is committed: outputs exist, come
from one clean run (execution counts 1..n in order, no errors), and every lesson starts with the
Colab badge and setup cell (``python -m dipcourse.authoring.stamp``).
"""
import json
import re
import pathlib

import nbformat
import pytest

from dipcourse import colab

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSON_NAMES = ["00_start_here", "01_classical_cs", "02_dip_overfitting", "03_admm_variants",
                "04_hybrid_priors", "05_jacobian_spectra", "06_fitting_along_directions",
                "07_other_remedies"]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_every_lesson_of_the_course_map_is_there():
    present = {p.stem for p in LESSONS}
    assert not set(LESSON_NAMES) - present, f"missing lessons: {sorted(set(LESSON_NAMES) - present)}"


@pytest.fixture(params=LESSONS, ids=lambda p: p.stem)
def lesson(request):
    path = request.param
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return path, nb


def test_outputs_from_a_clean_top_to_bottom_run(lesson):
    path, nb = lesson
    code = _code_cells(nb)
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: {counts.count(None)} code cells were never run"
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: execution counts {counts} are not 1..n"
    for index, cell in enumerate(code, start=1):
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.name} cell [{index}]: {output.get('ename')}"
            text = output.get("text", "") + json.dumps(output.get("data", {}).get("text/plain", ""))
            assert "Traceback (most recent call last)" not in text, f"{path.name} cell [{index}] shows a traceback"
    if path.stem != "00_start_here":  # the start page checks the environment; the others show figures
        assert any(o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})
                   for c in code for o in c.outputs), f"{path.name}: no figure in the committed outputs"


def test_badge_and_setup_cell_come_first(lesson):
    path, nb = lesson
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert colab.colab_badge(path.relative_to(ROOT).as_posix()) in first.source.splitlines()[0], \
        f"{path.name}: badge missing or stale: run python -m dipcourse.authoring.stamp {path.relative_to(ROOT)}"
    assert any(line.startswith("# ") for line in first.source.splitlines()), f"{path.name}: no '# title' in the first cell"
    assert _code_cells(nb)[0].source == colab.SETUP_CELL_SOURCE, \
        f"{path.name}: first code cell is not the current Colab setup cell: run python -m dipcourse.authoring.stamp"


def _calls(source):
    """Names of the functions and methods a cell's code calls (``claims.verify()`` → "verify")."""
    import ast

    # IPython magics and shell lines (%matplotlib, !pip) are not Python: blank them out before parsing
    tree = ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_lesson_ends_with_checks_stated_as_claims(lesson):
    """The Checks section states its claims through dipcourse.claims (parsed, not searched for a word),
    and the committed run shows the claims table with every claim holding."""
    from dipcourse.claims import collect

    path, nb = lesson
    headings = [i for i, c in enumerate(nb.cells)
                if c.cell_type == "markdown" and any(line.strip() == "## Checks" for line in c.source.splitlines())]
    assert headings, f"{path.name}: no '## Checks' section"
    code = [c for c in nb.cells[headings[-1]:] if c.cell_type == "code"]
    called = set().union(*(_calls(c.source) for c in code)) if code else set()
    assert "Claims" in called and "verify" in called, \
        f"{path.name}: the Checks section must state claims with dipcourse.claims.Claims and call .verify()"
    blocks = collect(nb)
    assert len(blocks) == 1, f"{path.name}: expected one claims table in the outputs, found {len(blocks)}"
    claims = blocks[0]["claims"]
    assert len(claims) >= 2, f"{path.name}: only {len(claims)} claim(s)"
    failing = [c["name"] for c in claims if not c["holds"]]
    assert not failing, f"{path.name}: committed claims that do not hold: {failing}"


def test_kernel_is_plain_python3(lesson):
    path, nb = lesson
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", \
        f"{path.name}: kernelspec must be python3 so nbval and Colab pick the default kernel"


INSTRUCTOR_WORDS = re.compile(r"\bCI\b|\bnbval\b|benchmarks/|\bbudget|\bmake test\b|\bseed-to-seed\b", re.I)


def test_student_text_is_apart_from_instructor_notes(lesson):
    """CI, budgets and benchmark talk belong in cells tagged `instructor` (collapsed on the website)."""
    path, nb = lesson
    leaks = [c.source.splitlines()[0][:60] for c in nb.cells
             if c.cell_type == "markdown" and "instructor" not in c.metadata.get("tags", [])
             and INSTRUCTOR_WORDS.search(c.source)]
    assert not leaks, f"{path.name}: instructor material in student cells (tag them 'instructor'): {leaks}"


def test_lesson_shows_its_settings_table(lesson):
    """Every lesson (but the start page's environment check) builds a dipcourse.config.Settings table."""
    path, nb = lesson
    called = set().union(*(_calls(c.source) for c in nb.cells if c.cell_type == "code"))
    assert "Settings" in called, f"{path.name}: no settings table (dipcourse.config.Settings)"
