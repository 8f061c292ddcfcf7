"""Checks that can fail: deliberate bugs injected into the package must make a lesson's Checks fail.

Each mutation below changes one line of a copy of ``dipcourse/`` (a text replacement that must match
exactly once, so a mutation that no longer applies fails loudly instead of passing), puts the copy first
on the kernel's ``PYTHONPATH`` (the lesson's worker processes inherit it), runs the lesson in the quick
profile with every cell executed, and requires that the lesson's Checks raise ``ClaimsFailed`` and that
the claim named in the mutation is among those that fail. A Check that a broken method also passes proves
nothing; these tests are how the course knows its Checks have teeth.

The list (lesson, bug, the claim that must catch it) is printed by ``pytest -s -m mutation`` and kept in
``benchmarks/README.md``.
"""
import pathlib
import shutil
from dataclasses import dataclass

import pytest

from dipcourse.authoring.course import execute_lesson
from dipcourse.claims import collect

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str          # short id
    lesson: str        # notebooks/<lesson>.ipynb
    file: str          # file inside dipcourse/
    find: str          # text replaced (must occur exactly once)
    replace: str
    bug: str           # the bug in words
    caught_by: str     # a substring of the name of a claim that must fail

    def __str__(self):
        return self.name


MUTATIONS = [
    Mutation("psnr-peak-one", "00_start_here", "metrics.py", "    peak = ref.max().item()\n", "    peak = 1.0\n",
             "PSNR with a fixed peak 1 instead of the reference's maximum (eq. 35)", "|PSNR of x + ε"),
]


def mutated_package(mutation, folder):
    """A copy of ``dipcourse/`` in ``folder`` with the mutation applied; returns the folder."""
    shutil.copytree(ROOT / "dipcourse", folder / "dipcourse", ignore=shutil.ignore_patterns("__pycache__"))
    target = folder / "dipcourse" / mutation.file
    text = target.read_text()
    count = text.count(mutation.find)
    assert count == 1, f"mutation {mutation.name}: the text to replace occurs {count} times in {mutation.file}"
    target.write_text(text.replace(mutation.find, mutation.replace))
    return folder


@pytest.mark.mutation
@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_a_broken_method_fails_the_lessons_checks(mutation, tmp_path):
    package = mutated_package(mutation, tmp_path)
    nb, _, _ = execute_lesson(ROOT / "notebooks" / f"{mutation.lesson}.ipynb", "quick",
                              extra_env={"PYTHONPATH": str(package)}, allow_errors=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert any(e.get("ename") == "ClaimsFailed" for e in errors), \
        f"{mutation.lesson} with the bug '{mutation.bug}': the Checks passed (errors: " \
        f"{[e.get('ename') for e in errors]})"
    failed = [c["name"] for block in collect(nb) for c in block["claims"] if not c["holds"]]
    assert any(mutation.caught_by in name for name in failed), \
        f"'{mutation.bug}' was not caught by the claim '{mutation.caught_by}'; failing claims: {failed}"
    print(f"| {mutation.lesson} | {mutation.bug} | {'; '.join(failed)} |")
