"""Student notebooks: every solution replaced by a stub with the same signature, every check kept."""
import ast
import inspect
import pathlib

import nbformat
import pytest

from dipcourse.authoring import student

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))

SOLUTION = '''\
import numpy as np
from math import sqrt


@staticmethod
def soft_threshold(v, lam=0.1):
    """Shrink ``v`` towards 0 by ``lam`` (prox of lam*|.|)."""
    secret = np.sign(v) * np.maximum(np.abs(v) - lam, 0)
    return secret


def norm(x,
         p: int = 2,  # a comment in the signature stays
         *, axis=None) -> float:
    # hint that must not survive: use sqrt
    return sqrt(sum(abs(t) ** p for t in x))


def one_liner(x): return x + 1
'''


def _exercise_notebook(solution=SOLUTION):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Lesson"),
        nbformat.v4.new_markdown_cell("**Exercise 1.** Write `soft_threshold`, `norm`, `one_liner`."),
        nbformat.v4.new_code_cell(solution, metadata={"tags": ["solution"]}, execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", text="hi\n")]),
        nbformat.v4.new_code_cell("assert norm([3, 4]) == 5", metadata={"tags": ["exercise-check"]}),
    ]
    return nb


def _functions(source):
    return {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}


def test_stubs_keep_signature_and_docstring_and_drop_the_body():
    stub = student.stub_solution(SOLUTION)
    assert "secret" not in stub and "hint" not in stub and "np.maximum" not in stub and "x + 1" not in stub
    assert "import numpy as np" in stub and "from math import sqrt" in stub
    assert "p: int = 2,  # a comment in the signature stays" in stub and "@staticmethod" in stub
    original, stubbed = _functions(SOLUTION), _functions(stub)
    assert original.keys() == stubbed.keys()
    for name, node in stubbed.items():
        assert ast.dump(node.args) == ast.dump(original[name].args)
        assert ast.get_docstring(node) == ast.get_docstring(original[name])
        body = node.body[1:] if ast.get_docstring(node) else node.body
        assert len(body) == 1 and isinstance(body[0], ast.Raise)


def test_stub_raises_not_implemented_with_same_signature():
    namespace, reference = {}, {}
    exec(student.stub_solution(SOLUTION.replace("@staticmethod\n", "")), namespace)
    exec(SOLUTION.replace("@staticmethod\n", ""), reference)
    for name in ("soft_threshold", "norm", "one_liner"):
        assert inspect.signature(namespace[name]) == inspect.signature(reference[name])
        with pytest.raises(NotImplementedError, match=f"Exercise: implement {name}"):
            namespace[name](*([[1.0]] if name != "soft_threshold" else [1.0]))


@pytest.mark.parametrize("bad, message", [
    ("x = 1\ndef f():\n    return x\n", "only imports and function definitions"),
    ("import numpy\n", "defines no function"),
    ("def f(:\n", "does not parse"),
])
def test_solution_cell_breaking_the_convention_is_an_error(bad, message):
    with pytest.raises(ValueError, match=message):
        student.stub_solution(bad)


def test_student_notebook_clears_outputs_and_keeps_checks():
    nb = _exercise_notebook()
    out = student.student_notebook(nb)
    assert all(c.outputs == [] and c.execution_count is None for c in out.cells if c.cell_type == "code")
    assert out.cells[3].source == nb.cells[3].source
    assert nb.cells[2].source == SOLUTION, "the lesson itself must stay untouched"
    assert student.exercises(out) == [(2, 3)]


def test_missing_check_cell_is_reported(tmp_path):
    nb = _exercise_notebook()
    nb.cells[3].metadata["tags"] = []
    path = tmp_path / "09_x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="no following 'exercise-check' cell"):
        student.write_student_versions([path], tmp_path / "student")


def test_cli_writes_student_folder(tmp_path):
    path = tmp_path / "09_x.ipynb"
    nbformat.write(_exercise_notebook(), path)
    assert student.main([str(path), "--out", str(tmp_path / "student")]) == 0
    written = nbformat.read(tmp_path / "student" / "09_x.ipynb", as_version=4)
    assert "NotImplementedError" in written.cells[2].source


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_student_version(lesson):
    """Every solution in the lesson is removed, every exercise keeps its check, stubs parse."""
    nb = nbformat.read(lesson, as_version=4)
    pairs = student.exercises(nb)
    if lesson.stem != "00_start_here":
        assert len(pairs) >= 2, "every lesson has at least two exercises (COURSE.md)"
    assert all(check is not None for _, check in pairs), f"solution cells without a check cell: {pairs}"
    out = student.student_notebook(nb, name=lesson.name)
    for solution_index, check_index in pairs:
        original, stub = nb.cells[solution_index].source, out.cells[solution_index].source
        stubbed = _functions(stub)
        assert stubbed.keys() == _functions(original).keys()
        for node in stubbed.values():
            body = node.body[1:] if ast.get_docstring(node) else node.body
            assert [type(s) for s in body] == [ast.Raise], f"{node.name}: solution body survived"
        assert out.cells[check_index].source == nb.cells[check_index].source
        assert "exercise-check" in out.cells[check_index].metadata["tags"]
    assert all(not c.get("outputs") for c in out.cells if c.cell_type == "code")
