"""Student versions of the lessons: exercise solutions replaced by stubs, outputs cleared.

Convention (every lesson follows it): an exercise is a Markdown cell stating the task, a code cell
tagged ``solution`` holding only imports and function definitions, then a code cell tagged
``exercise-check`` that calls the function(s) and asserts. In the student version each solution
function keeps its ``def`` line(s) and docstring and its body becomes
``raise NotImplementedError("Exercise: ...")``; the check cell stays, so students know when they
are done.

``python -m dipcourse.authoring.student [--out student] [notebooks/NN_x.ipynb ...]`` (or ``make student``)
writes ``student/NN_x.ipynb`` for every lesson in ``notebooks/``.
"""
import ast
import pathlib
import sys

SOLUTION_TAG = "solution"
CHECK_TAG = "exercise-check"


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def _signature_end(lines, node):
    """Line number (1-based) of the ``:`` that ends the ``def`` of ``node``."""
    import io
    import tokenize

    text = "\n".join(lines[node.lineno - 1:]) + "\n"
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
            return node.lineno + tok.start[0] - 1
    raise ValueError(f"cannot find the end of the signature of {node.name}")


def stub_function(node, lines):
    """Source of function ``node`` with its body replaced by ``raise NotImplementedError``.

    Keeps decorators, the (possibly multi-line) signature and the docstring exactly as written;
    comments in the body go with it (they may give the solution away). ``lines`` are the cell's
    source lines.
    """
    body = node.body
    first = body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
        and isinstance(first.value.value, str)
    raise_line = f'raise NotImplementedError("Exercise: implement {node.name}")'
    start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
    signature_end = _signature_end(lines, node)
    if first.lineno == signature_end:
        # The body starts on the def line (``def f(x): return x``): rebuild the function with ast.
        stub = ast.parse(f"def {node.name}():\n    {raise_line}").body[0]
        stub.args, stub.decorator_list, stub.returns = node.args, node.decorator_list, node.returns
        stub.body[:0] = [first] if has_docstring else []
        return ast.unparse(stub)
    kept = lines[start:signature_end]
    if has_docstring:
        kept += lines[first.lineno - 1:first.end_lineno]
    return "\n".join(kept + [" " * first.col_offset + raise_line])


def stub_solution(source, where="solution cell"):
    """Student version of a solution cell: imports kept, each function stubbed.

    Raises:
        ValueError: the cell holds something other than imports and function definitions (the
            convention), or does not parse.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{where} does not parse: {err}") from err
    lines = source.splitlines()
    imports, parts = [], []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append("\n".join(lines[node.lineno - 1:node.end_lineno]))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parts.append(stub_function(node, lines))
        else:
            raise ValueError(f"{where} line {node.lineno}: a solution cell may hold only imports and "
                             f"function definitions, found {type(node).__name__}; move it to another cell")
    if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in tree.body):
        raise ValueError(f"{where} defines no function: an exercise's solution cell must define one")
    return "\n\n\n".join((["\n".join(imports)] if imports else []) + parts) + "\n"


def student_notebook(nb, name="notebook"):
    """Return a student copy of notebook ``nb``: solutions stubbed, every output cleared."""
    import copy

    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        if SOLUTION_TAG in _tags(cell):
            cell.source = stub_solution(cell.source, where=f"{name} cell {index}")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    return student


def exercises(nb):
    """``(solution_cell_index, check_cell_index or None)`` for every solution cell of ``nb``.

    The check cell is the next code cell after the solution cell, if it is tagged ``exercise-check``.
    """
    pairs = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and SOLUTION_TAG in _tags(cell):
            later = [i for i in range(index + 1, len(nb.cells)) if nb.cells[i].cell_type == "code"]
            check = later[0] if later and CHECK_TAG in _tags(nb.cells[later[0]]) else None
            pairs.append((index, check))
    return pairs


def write_student_versions(notebooks, out):
    """Write the student version of each notebook path in ``notebooks`` into folder ``out``."""
    import nbformat

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        path = pathlib.Path(path)
        nb = nbformat.read(path, as_version=4)
        missing = [i for i, check in exercises(nb) if check is None]
        if missing:
            raise ValueError(f"{path}: solution cell(s) {missing} have no following '{CHECK_TAG}' cell")
        target = out / path.name
        nbformat.write(student_notebook(nb, name=path.name), target)
        written.append(target)
        print(f"{target}: {len(exercises(nb))} exercises stubbed, outputs cleared")
    return written


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dipcourse.authoring.student", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="lessons (default: notebooks/*.ipynb)")
    parser.add_argument("--out", default="student", help="output folder (default: student/)")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(pathlib.Path("notebooks").glob("*.ipynb"))
    if not notebooks:
        parser.error("no lessons found: run from the repository root or name the notebooks")
    try:
        write_student_versions(notebooks, args.out)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
