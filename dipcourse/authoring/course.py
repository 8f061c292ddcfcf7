"""Run the whole course headless: every lesson in order; executed notebooks, HTML, times and claims in ``build/``.

``python -m dipcourse.authoring.course run --profile teaching`` (or ``make run PROFILE=teaching``) executes
each ``notebooks/NN_*.ipynb`` top to bottom in a fresh kernel with ``DIPCOURSE_PROFILE`` set, writes
``build/<profile>/NN_*.ipynb`` and ``build/<profile>/NN_*.html``, prints each lesson's time, and writes

* ``build/<profile>/times.md`` — the lessons' wall times;
* ``build/<profile>/claims.json`` and ``claims.md`` — every claim the lessons' Checks stated
  (:mod:`dipcourse.claims`): value, bound, margin, spread, whether it holds.

A cell error fails loudly: the error is printed, the remaining lessons still run, and the exit status is 1.
``--threads N`` runs the kernels with ``OMP_NUM_THREADS=N`` (the claims must hold at 1 and at 2).
``--jitter K`` runs them with ``DIPCOURSE_ROUNDING_JITTER=K``: the network of every training run starts a few
rounding units away from its seeded weights (:func:`dipcourse.training.rounding_jitter`), as if the course ran
on another machine.

``python -m dipcourse.authoring.course spread RUN/claims.json ...`` reads the claims of several runs (thread
counts, jitters, machines) and writes one table: each claim's values over the runs and its **worst margin** —
the number that says whether a claim will hold on a student's machine, not just on ours.
``--inplace`` also writes each successfully executed notebook back over ``notebooks/`` — how
instructors refresh the committed outputs (``make refresh`` does it with the teaching profile).
"""
import json
import math
import os
import pathlib
import sys
import time

from dipcourse.claims import collect
from dipcourse.config import PROFILE_NAMES
from dipcourse.training import JITTER_VARIABLE


def lessons(folder="notebooks"):
    """The lesson notebooks in course order (by their number prefix)."""
    return sorted(pathlib.Path(folder).glob("[0-9][0-9]_*.ipynb"))


def execute_lesson(path, profile, timeout=1800, threads=None, extra_env=None, allow_errors=False):
    """Execute the notebook at ``path`` in a fresh kernel with ``DIPCOURSE_PROFILE=profile``.

    ``threads`` sets ``OMP_NUM_THREADS`` in the kernel; ``extra_env`` adds other variables (the mutation
    tests put a changed copy of the package first on ``PYTHONPATH``); ``allow_errors`` runs every cell even
    after one fails. The kernel runs in the lesson's folder, as when a student opens it in JupyterLab.

    Returns:
        ``(notebook, seconds, error)`` where ``error`` is ``None`` or the failing cell's error text.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, DIPCOURSE_PROFILE=profile, **(extra_env or {}))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(pathlib.Path(path).parent)}})
    start, error = time.perf_counter(), None
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        error = str(err)
    return nb, time.perf_counter() - start, error


def export_html(nb, target):
    """Write notebook ``nb`` as a standalone HTML page (widgets render as their last state)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    pathlib.Path(target).write_text(body, encoding="utf-8")


def run_course(profile, notebooks=None, out="build", inplace=False, timeout=1800, threads=None, jitter=0):
    """Execute every lesson; return ``[(name, seconds, error or None)]``; write times and claims."""
    import nbformat

    notebooks = [pathlib.Path(p) for p in (notebooks or lessons())]
    if not notebooks:
        raise ValueError("no lessons found: run from the repository root or name the notebooks")
    out = pathlib.Path(out) / profile
    out.mkdir(parents=True, exist_ok=True)
    results, claims = [], []
    extra_env = {JITTER_VARIABLE: str(jitter)} if jitter else None
    for path in notebooks:
        print(f"--- {path.name} ({profile} profile) ...", flush=True)
        nb, seconds, error = execute_lesson(path, profile, timeout, threads, extra_env)
        nbformat.write(nb, out / path.name)
        export_html(nb, out / path.with_suffix(".html").name)
        if error:
            print(f"!!! {path.name} FAILED after {seconds:.0f} s:\n{error}", flush=True)
        else:
            print(f"    {path.name}: {seconds:.0f} s", flush=True)
            if inplace:
                nbformat.write(nb, path)
        results.append((path.name, seconds, error))
        claims.extend(collect(nb))
    (out / "times.md").write_text(times_table(results, profile, threads))
    for block in claims:
        block["jitter"] = jitter
    (out / "claims.json").write_text(json.dumps(claims, indent=1))
    (out / "claims.md").write_text(claims_table(claims, profile))
    return results


def times_table(results, profile, threads=None):
    """Markdown table of lesson times (for benchmarks/README.md); ``threads``: the kernels' OMP_NUM_THREADS."""
    import platform

    import torch

    rows = [f"| {name} | {seconds:.0f} | {'FAILED' if error else 'ok'} |" for name, seconds, error in results]
    total = sum(seconds for _, seconds, _ in results)
    return "\n".join([
        f"Profile `{profile}`, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, kernel threads "
        f"{threads or os.environ.get('OMP_NUM_THREADS') or torch.get_num_threads()}.",
        "",
        "| lesson | seconds | status |",
        "|---|---:|---|",
        *rows,
        f"| **total** | **{total:.0f}** | |",
        "",
    ])


def claims_table(collected, profile):
    """Markdown of every lesson's claims (one table per lesson), from :func:`dipcourse.claims.collect`."""
    lines = [f"# Claims, profile `{profile}`", ""]
    for block in collected:
        lines += [f"## {block['lesson']} (torch threads {block['threads']}, {block['machine']})", "",
                  "| claim | value | bound | margin | samples | holds |", "|---|---:|---:|---:|---|---|"]
        for c in block["claims"]:
            # float(): a non-finite value is stored as the string "inf", "-inf" or "nan"
            samples = ", ".join(f"{float(v):.3g}" for v in c["samples"])
            lines.append(f"| {c['name']} | {float(c['value']):.4g} {c['unit']} ({c['statistic']}) | "
                         f"{c['direction']} {float(c['bound']):g} | {float(c['margin']):+.3g} | {samples} | "
                         f"{'yes' if c['holds'] else 'NO'} |")
        lines.append("")
    return "\n".join(lines)


def spread_table(runs):
    """Markdown: every claim of several runs of the course, its values over the runs and its worst margin.

    ``runs`` is a list of the runs' collected claims (the content of their ``claims.json``), all of one profile.
    A claim is matched by lesson and name; a lesson missing from a run (it failed before its Checks) and a
    non-finite margin (a broken ratio) count as failures there. Returns ``(table, failed)``, ``failed`` being
    the number of claims that did not hold in every run.
    """
    profiles = {lesson.get("profile") for run in runs for lesson in run}
    if len(profiles) > 1:
        raise ValueError(f"course spread: the runs are of different profiles ({', '.join(map(str, sorted(profiles)))}); "
                         "compare runs of one profile")

    def kinds(field):
        return ", ".join(sorted({str(lesson.get(field, 0)) for run in runs for lesson in run}))

    lines = [f"{len(runs)} runs — profile {', '.join(map(str, profiles))}; torch threads: {kinds('threads')}; "
             f"jitter draws: {kinds('jitter')}; machines: {kinds('machine')}.", "",
             "| lesson | claim | bound | values over the runs (min … max) | worst margin | holds |",
             "|---|---|---:|---|---:|---|"]
    found = {}   # (lesson, claim name) -> {run index: claim}, in the order the claims first appear
    for index, run in enumerate(runs):
        for lesson in run:
            for claim in lesson["claims"]:
                found.setdefault((lesson["lesson"], claim["name"]), {})[index] = claim
    failed = 0
    for key, seen in found.items():
        first = next(iter(seen.values()))
        values = [float(c["value"]) for c in seen.values()]
        margins = [float(c["margin"]) if math.isfinite(float(c["margin"])) else -math.inf for c in seen.values()]
        held = sum(bool(c["holds"]) for c in seen.values())
        worst = min(margins) if len(seen) == len(runs) else -math.inf
        failed += held < len(runs)
        lines.append(f"| {key[0]} | {key[1]} | {first['direction']} {float(first['bound']):g} | "
                     f"{min(values):.4g} … {max(values):.4g} {first.get('unit', '')} | {worst:+.3g} | "
                     f"{held}/{len(runs)}{'' if held == len(runs) else ' **NO**'} |")
    counts = [sum(len(lesson["claims"]) for lesson in run) for run in runs]
    lines += ["", f"Claims per run: {', '.join(map(str, counts))}; {failed} of {len(found)} did not hold in every run."]
    return "\n".join(lines) + "\n", failed


def spread_command(paths, out=None):
    """``course spread``: print (and write to ``out``) :func:`spread_table` of the runs; exit status 1 if a claim
    failed in any run."""
    runs = [json.loads(pathlib.Path(path).read_text()) for path in paths]
    try:
        table, failed = spread_table(runs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    if out:
        pathlib.Path(out).write_text(table)
    return 1 if failed else 0


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dipcourse.authoring.course",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute every lesson in order")
    run.add_argument("notebooks", nargs="*", help="lessons to run (default: notebooks/NN_*.ipynb)")
    run.add_argument("--profile", default="teaching", choices=PROFILE_NAMES)
    run.add_argument("--out", default="build", help="output folder (default: build/)")
    run.add_argument("--inplace", action="store_true", help="also overwrite the lessons with the new outputs")
    run.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    run.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the kernels")
    run.add_argument("--jitter", type=int, default=0,
                     help="DIPCOURSE_ROUNDING_JITTER for the kernels: start every network a few rounding units "
                          "from its seeded weights (0: off)")
    spread = sub.add_parser("spread", help="worst margin of every claim over several runs' claims.json")
    spread.add_argument("runs", nargs="+", help="claims.json files of runs of one profile")
    spread.add_argument("--out", default=None, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    if args.command == "spread":
        return spread_command(args.runs, args.out)
    if args.jitter < 0:
        print("error: --jitter must be 0 (off) or a positive draw number", file=sys.stderr)
        return 2
    try:
        results = run_course(args.profile, args.notebooks, args.out, args.inplace, args.timeout, args.threads,
                             args.jitter)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(times_table(results, args.profile))
    failed = [name for name, _, error in results if error]
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the errors above; outputs in {args.out}/{args.profile}/)",
              file=sys.stderr)
        return 1
    print(f"All {len(results)} lessons ran; notebooks, HTML, times.md and claims.md in {args.out}/{args.profile}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
