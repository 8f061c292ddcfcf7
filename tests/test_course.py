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


def _claims_run(threads, jitter, values, lessons=("01_a", "02_b"), profile="quick"):
    from dipcourse.claims import Claims

    run = []
    for lesson in lessons:
        claims = Claims(lesson, profile=profile)
        claims.at_most("gap", values[lesson], bound=1.0, unit="dB", statistic="mean")
        claims.at_least("gain", [2.0 - v for v in values[lesson]], bound=0.5, statistic="mean")
        block = claims.as_dict()
        block.update(threads=threads, jitter=jitter)
        run.append(block)
    return run


def test_spread_reports_each_claims_worst_margin_over_runs(tmp_path, capsys):
    import json

    runs = [_claims_run(1, 0, {"01_a": [0.2, 0.4], "02_b": [0.5]}),
            _claims_run(2, 3, {"01_a": [0.7], "02_b": [0.9, 1.5]}),
            _claims_run(2, 4, {"01_a": [0.1]}, lessons=("01_a",))]          # lesson 02 failed before its Checks
    table, failed = course.spread_table(runs)
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in table.splitlines()
            if line.startswith("| 0")}
    assert "torch threads: 1, 2; jitter draws: 0, 3, 4" in table and failed == 2
    assert "0.1 … 0.7 dB | +0.3 | 3/3 |" in rows["01_a", "gap"]               # worst margin 1 − 0.7
    assert "1.3 … 1.9  | +0.8 | 3/3 |" in rows["01_a", "gain"]                # at least: 1.3 − 0.5
    assert "| -inf | 1/3 **NO** |" in rows["02_b", "gap"]                     # failed in one run, missing in one
    broken = _claims_run(1, 5, {"01_a": [0.2], "02_b": [0.5]})
    broken[0]["claims"][0].update(value="nan", margin="nan", holds=False)     # a ratio that went 0/0
    table, failed = course.spread_table([runs[0], broken])
    assert "| -inf | 1/2 **NO** |" in [line for line in table.splitlines() if "| 01_a | gap |" in line][0]
    paths = []
    for k, run in enumerate(runs):
        paths.append(tmp_path / f"claims{k}.json")
        paths[-1].write_text(json.dumps(run))
    assert course.main(["spread", *map(str, paths[:1]), "--out", str(tmp_path / "spread.md")]) == 0
    assert course.main(["spread", *map(str, paths)]) == 1
    assert [line[:6] for line in (tmp_path / "spread.md").read_text().splitlines() if line.startswith("| 0")] == \
        ["| 01_a", "| 01_a", "| 02_b", "| 02_b"]
    (tmp_path / "teaching.json").write_text(json.dumps(_claims_run(2, 0, {"01_a": [0.1], "02_b": [0.1]},
                                                                   profile="teaching")))
    assert course.main(["spread", str(paths[0]), str(tmp_path / "teaching.json")]) == 2
    assert "different profiles" in capsys.readouterr().err
