"""Stamp the lessons: the "Open in Colab" badge and the setup cell at the top of every notebook.

``python -m dipcourse.authoring.stamp notebooks/NN_x.ipynb ...`` inserts or refreshes them (their text
comes from :mod:`dipcourse.colab`, which the lessons themselves use); re-execute a stamped lesson.
"""
import json
import sys

from dipcourse.colab import BADGE_IMAGE, BADGE_TAG, SETUP_CELL_SOURCE, SETUP_TAG, colab_badge


def _new_cell(kind, source, tag):
    import nbformat

    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = make(source, metadata={"tags": [tag]})
    cell["id"] = tag
    return cell


def _has_tag(cell, tag):
    return tag in cell.get("metadata", {}).get("tags", [])


def _strip_badge(markdown):
    """The markdown without any Colab badge line."""
    return "\n".join(line for line in markdown.splitlines() if BADGE_IMAGE not in line).strip("\n")


def stamp(nb, notebook_path):
    """Insert or refresh the badge cell and the setup cell at the top of notebook ``nb`` (in place).

    The first Markdown cell keeps its text (the lesson title); the badge goes on its first line.
    A setup cell whose source is already current is kept with its outputs, so stamping an
    executed notebook twice changes nothing.

    Returns:
        True if the notebook changed.
    """
    before = json.dumps(nb, sort_keys=True)
    badge = colab_badge(notebook_path)
    cells = nb.cells
    first = cells[0] if cells else None
    if first is not None and first.cell_type == "markdown" and (_has_tag(first, BADGE_TAG) or first.source.lstrip().startswith(("#", "[![Open In Colab"))):
        title = _strip_badge(first.source)
        first.source = badge + ("\n\n" + title if title else "")
        first.setdefault("metadata", {}).setdefault("tags", [])
        if BADGE_TAG not in first.metadata["tags"]:
            first.metadata["tags"].append(BADGE_TAG)
    else:
        cells.insert(0, _new_cell("markdown", badge, BADGE_TAG))
    old_setup = [c for c in cells[1:] if c.cell_type == "code" and _has_tag(c, SETUP_TAG)]
    if len(old_setup) == 1 and old_setup[0].source == SETUP_CELL_SOURCE and cells[1] is old_setup[0]:
        return before != json.dumps(nb, sort_keys=True)
    for cell in old_setup:
        cells.remove(cell)
    cells.insert(1, _new_cell("code", SETUP_CELL_SOURCE, SETUP_TAG))
    return True


def stamp_file(path, root=None):
    """Stamp the notebook file at ``path``; its badge links to its path relative to ``root`` (the repo root)."""
    import pathlib

    import nbformat

    path = pathlib.Path(path).resolve()
    root = pathlib.Path(root).resolve() if root else _repo_root(path)
    nb = nbformat.read(path, as_version=4)
    changed = stamp(nb, path.relative_to(root).as_posix())
    if changed:
        nbformat.write(nb, path)
    return changed


def _repo_root(path):
    """The nearest folder above ``path`` holding ``pyproject.toml``."""
    for parent in path.parents:
        if (parent / "pyproject.toml").exists():
            return parent
    raise ValueError(f"{path} is not inside the course repository (no pyproject.toml above it)")


def main(argv=None):
    """``python -m dipcourse.authoring.stamp notebooks/NN_x.ipynb ...``"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dipcourse.authoring.stamp", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="the lessons to stamp")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        changed = stamp_file(path)
        print(f"{path}: {'stamped (re-execute it)' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
