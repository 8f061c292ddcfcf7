"""The headless course runner on two tiny lessons: outputs, HTML, times, and a loud failure."""
import nbformat

from dipcourse.authoring import course


def _write(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_runs_lessons_in_order_with_profile_and_fails_loudly(tmp_path, capsys):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    _write(lessons / "01_ok.ipynb", "import os\nprint(os.environ['DIPCOURSE_PROFILE'])")
    _write(lessons / "00_first.ipynb", "x = 1", "x + 1")
    _write(lessons / "02_broken.ipynb", "1 / 0", "print('never')")
    assert [p.name for p in course.lessons(lessons)] == ["00_first.ipynb", "01_ok.ipynb", "02_broken.ipynb"]

    status = course.main(["run", "--profile", "quick", "--out", str(tmp_path / "build"),
                          *map(str, course.lessons(lessons))])

    assert status == 1
    out, err = capsys.readouterr()
    assert "02_broken.ipynb FAILED" in out and "ZeroDivisionError" in out and "FAILED: 02_broken.ipynb" in err
    build = tmp_path / "build" / "quick"
    ok = nbformat.read(build / "01_ok.ipynb", as_version=4)
    assert ok.cells[1].outputs[0]["text"] == "quick\n"
    first = nbformat.read(build / "00_first.ipynb", as_version=4)
    assert [c.execution_count for c in first.cells[1:]] == [1, 2]
    assert (build / "00_first.html").read_text().lstrip().lower().startswith("<!doctype html>")
    times = (build / "times.md").read_text()
    assert "| 00_first.ipynb |" in times and "| 02_broken.ipynb |" in times and "FAILED" in times


def test_inplace_rewrites_only_lessons_that_ran(tmp_path):
    _write(tmp_path / "00_ok.ipynb", "print('fresh')")
    _write(tmp_path / "01_bad.ipynb", "raise RuntimeError('boom')")
    course.run_course("quick", course.lessons(tmp_path), out=tmp_path / "build", inplace=True)
    assert nbformat.read(tmp_path / "00_ok.ipynb", as_version=4).cells[1].execution_count == 1
    assert nbformat.read(tmp_path / "01_bad.ipynb", as_version=4).cells[1].execution_count is None


def test_no_lessons_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert course.main(["run", "--profile", "quick"]) == 2
    assert "no lessons found" in capsys.readouterr().err


def _claims_run(threads, jitter, values, lessons=("01_a", "02_b")):
    from dipcourse.claims import Claims

    run = []
    for lesson in lessons:
        claims = Claims(lesson, profile="quick")
        claims.at_most("gap", values[lesson], bound=1.0, unit="dB", statistic="mean")
        block = claims.as_dict()
        block.update(threads=threads, jitter=jitter)
        run.append(block)
    return run


def test_spread_reports_each_claims_worst_margin_over_runs(tmp_path, capsys):
    import json

    runs = [_claims_run(1, 0, {"01_a": [0.2, 0.4], "02_b": [0.5]}),
            _claims_run(2, 3, {"01_a": [0.7], "02_b": [0.9, 1.5]}),
            _claims_run(2, 4, {"01_a": [0.1]}, lessons=("01_a",))]          # lesson 02 failed before its Checks
    table = course.spread_table(runs)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| 0")}
    assert "torch threads: 1, 2; jitter draws: 0, 3, 4" in table
    assert "0.1 … 0.7 dB | +0.3 | 3/3 |" in rows["01_a"]                   # worst margin 1 − 0.7
    assert "| -inf | 1/3 **NO** |" in rows["02_b"]                          # failed in one run, missing in one
    paths = []
    for k, run in enumerate(runs):
        paths.append(tmp_path / f"claims{k}.json")
        paths[-1].write_text(json.dumps(run))
    assert course.main(["spread", *map(str, paths[:1]), "--out", str(tmp_path / "spread.md")]) == 0
    assert course.main(["spread", *map(str, paths)]) == 1
    assert [line[:6] for line in (tmp_path / "spread.md").read_text().splitlines() if line.startswith("| 0")] == \
        ["| 01_a", "| 02_b"]
    capsys.readouterr()
