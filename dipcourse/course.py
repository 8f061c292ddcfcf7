"""Run the whole course headless: every lesson in order, executed notebooks + HTML in ``build/``.

``python -m dipcourse.course run --profile teaching`` (or ``make run PROFILE=teaching``) executes
each ``notebooks/NN_*.ipynb`` top to bottom in a fresh kernel with ``DIPCOURSE_PROFILE`` set, writes
``build/<profile>/NN_*.ipynb`` and ``build/<profile>/NN_*.html``, prints each lesson's time, and
writes the table to ``build/<profile>/times.md``. A cell error fails loudly: the error is printed,
the remaining lessons still run, and the exit status is 1.

``--inplace`` also writes each successfully executed notebook back over ``notebooks/`` — how
instructors refresh the committed outputs (``make refresh`` does it with the teaching profile).
"""
import os
import pathlib
import sys
import time

from dipcourse.config import PROFILE_NAMES


def lessons(folder="notebooks"):
    """The lesson notebooks in course order (by their number prefix)."""
    return sorted(pathlib.Path(folder).glob("[0-9][0-9]_*.ipynb"))


def execute_lesson(path, profile, timeout=1800):
    """Execute the notebook at ``path`` in a fresh kernel with ``DIPCOURSE_PROFILE=profile``.

    Returns:
        ``(notebook, seconds, error)`` where ``error`` is ``None`` or the failing cell's error text.
        The kernel runs in the lesson's folder, as when a student opens it in JupyterLab.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("DIPCOURSE_PROFILE")
    os.environ["DIPCOURSE_PROFILE"] = profile  # the kernel inherits this process's environment
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(pathlib.Path(path).parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err)
    finally:
        if env_before is None:
            os.environ.pop("DIPCOURSE_PROFILE", None)
        else:
            os.environ["DIPCOURSE_PROFILE"] = env_before
    return nb, time.perf_counter() - start, error


def export_html(nb, target):
    """Write notebook ``nb`` as a standalone HTML page (widgets render as their last state)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    pathlib.Path(target).write_text(body, encoding="utf-8")


def run_course(profile, notebooks=None, out="build", inplace=False, timeout=1800):
    """Execute every lesson; return ``[(name, seconds, error or None)]`` and write ``times.md``."""
    import nbformat

    notebooks = [pathlib.Path(p) for p in (notebooks or lessons())]
    if not notebooks:
        raise ValueError("no lessons found: run from the repository root or name the notebooks")
    out = pathlib.Path(out) / profile
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in notebooks:
        print(f"--- {path.name} ({profile} profile) ...", flush=True)
        nb, seconds, error = execute_lesson(path, profile, timeout)
        nbformat.write(nb, out / path.name)
        export_html(nb, out / path.with_suffix(".html").name)
        if error:
            print(f"!!! {path.name} FAILED after {seconds:.0f} s:\n{error}", flush=True)
        else:
            print(f"    {path.name}: {seconds:.0f} s", flush=True)
            if inplace:
                nbformat.write(nb, path)
        results.append((path.name, seconds, error))
    (out / "times.md").write_text(times_table(results, profile))
    return results


def times_table(results, profile):
    """Markdown table of lesson times (for benchmarks/README.md)."""
    import platform

    import torch

    rows = [f"| {name} | {seconds:.0f} | {'FAILED' if error else 'ok'} |" for name, seconds, error in results]
    total = sum(seconds for _, seconds, _ in results)
    return "\n".join([
        f"Profile `{profile}`, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}.",
        "",
        "| lesson | seconds | status |",
        "|---|---:|---|",
        *rows,
        f"| **total** | **{total:.0f}** | |",
        "",
    ])


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dipcourse.course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute every lesson in order")
    run.add_argument("notebooks", nargs="*", help="lessons to run (default: notebooks/NN_*.ipynb)")
    run.add_argument("--profile", default="teaching", choices=PROFILE_NAMES)
    run.add_argument("--out", default="build", help="output folder (default: build/)")
    run.add_argument("--inplace", action="store_true", help="also overwrite the lessons with the new outputs")
    run.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    try:
        results = run_course(args.profile, args.notebooks, args.out, args.inplace, args.timeout)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(times_table(results, args.profile))
    failed = [name for name, _, error in results if error]
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the errors above; outputs in {args.out}/{args.profile}/)",
              file=sys.stderr)
        return 1
    print(f"All {len(results)} lessons ran; executed notebooks and HTML in {args.out}/{args.profile}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
