from emews.report import best_over_time, load_over_time, summary, utilization
from emews.report.__main__ import main


def rows(*spans, status="done"):
    return [{"task_id": i, "attempt": 0, "status": status, "loss": float(10 - i), "params": {"x": i},
             "start": s, "end": e} for i, (s, e) in enumerate(spans)]


def test_utilization_and_load():
    r = rows((0.0, 1.0), (0.0, 2.0), (1.0, 2.0))
    u = utilization(r, workers=2)
    assert u == {"busy": 4.0, "span": 2.0, "utilization": 1.0}
    assert utilization(rows((0.0, 1.0), (1.0, 2.0)), workers=2)["utilization"] == 0.5
    assert [n for _, n in load_over_time(r)] == [1, 2, 1, 2, 1, 0]
    assert best_over_time(r) == [(1.0, 10.0), (2.0, 9.0), (2.0, 8.0)]


def test_summary_of_a_real_run(tmp_path, capsys):
    import emews

    res = emews.search("emews.examples:sphere", {"x0": {"type": "real", "low": -1, "high": 1}}, max_evals=6,
                       workers=2, seed=0, output=tmp_path, experiment="rep")
    text = summary(res.directory)
    assert "experiment rep (local pool, 2 workers): 6 tasks" in text and "best loss" in text
    assert main([str(res.directory)]) == 0 and "worker utilization" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing")]) == 2


def test_metric_names_never_shadow_fixed_columns(tmp_path):
    import csv

    from emews.journal import write_results_csv

    row = {"task_id": 0, "attempt": 0, "status": "done", "loss": 1.0, "params": {"a": 1},
           "metrics": {"runtime": 3, "device": "cpu", "a": 2}, "start": 1.0, "end": 2.5}
    write_results_csv(tmp_path / "r.csv", [row], ["a"])
    (line,) = csv.DictReader(open(tmp_path / "r.csv"))
    assert line["runtime"] == "1.5" and line["metric_runtime"] == "3" and line["metric_a"] == "2" and line["a"] == "1"
