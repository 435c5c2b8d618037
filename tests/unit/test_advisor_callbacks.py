"""The wizard's procedure fields, the procedure guide, and the advisor panel's callbacks, called as plain functions
against a real SQLite store (no browser); and that the guide agrees with what each procedure accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from dash import html, no_update

from hopper.engine.entities import Importance
from hopper.engine.errors import ValidationError
from hopper.engine.procedure_guide import COMMON_OPTIONS, GUIDES, options_from_fields
from hopper.engine.procedures import PROCEDURES, Decision, Objective, make_procedure
from hopper.engine.space import SearchSpace
from hopper.engine.status import DecisionKind
from hopper.rest import create_app
from hopper.webui import callbacks as cb
from hopper.webui import layout
from tests.support.dash_forms import GRID
from tests.support.dash_forms import text_of as _text

ROOT = Path(__file__).resolve().parents[2]
SPACE = {"lr": {"type": "choice", "values": [0.001, 0.01, 0.1]},
         "units": {"type": "choice", "values": [16, 32, 64]}}


def _make(name: str, options: dict):  # noqa: ANN202
    objectives = [Objective("val_accuracy", "max"), Objective("params", "min")]
    return make_procedure(name, SearchSpace.parse(SPACE), objectives[0], budget=20, options=options, max_epochs=9,
                          objectives=objectives if GUIDES[name].multi_objective else objectives[:1])


@pytest.mark.parametrize("name", sorted(PROCEDURES))
def test_the_guide_describes_exactly_what_each_procedure_accepts(name: str) -> None:
    guide = GUIDES[name]
    cls = PROCEDURES[name]
    assert {o.name for o in guide.options} <= set(cls.OPTIONS), "the guide names an option the procedure refuses"
    # Every option a procedure validates is in the guide; NSGA-II's two probabilities go to Optuna unchecked.
    assert set(cls.OPTIONS) - {o.name for o in guide.options} <= {"mutation_prob", "crossover_prob"}
    assert guide.needs_budget == cls.needs_budget
    procedure = _make(name, {o.name: o.default for o in guide.options})
    assert procedure.name == name
    for option in guide.options:
        bad = "nonsense" if option.kind == "choice" else option.high * 10 + 1 if option.high is not None else -1
        with pytest.raises(ValidationError) as caught:
            _make(name, {option.name: bad})
        assert caught.value.field == f"procedure_options.{option.name}"
    _make(name, options_from_fields({o.name: o.default for o in COMMON_OPTIONS}))


def test_the_readme_documents_every_procedure_and_option() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Search procedures"):]
    for guide in GUIDES.values():
        assert f"### `{guide.name}`" in section, guide.name
        body = section[section.index(f"### `{guide.name}`"):][:3000]
        for option in guide.options:
            assert f"`{option.name}`" in body, (guide.name, option.name)
    assert "`median_stop`" in section and "advisor" in section


def test_wizard_procedure_fields_validate_inline_and_launch(services, digits) -> None:
    fields = layout.procedure_fields("asha")
    ids = [c.id for c in _controls(fields)]
    assert [i["name"] for i in ids] == ["min_epochs", "eta", "sampler", "median_stop.grace_epochs",
                                        "median_stop.min_samples"]
    assert "successive halving" in _text(fields)
    values = [2, 1, "tpe", None, None]
    notice = cb.procedure_feedback(services, "asha", ids, values, GRID, 6, 8)
    assert notice.className == "error" and "[procedure_options.eta]" in _text(notice) and "[2, 100]" in _text(notice)
    values[1] = 2
    assert _text(cb.procedure_feedback(services, "asha", ids, values, GRID, 6, 8)) == \
        "valid: asha with eta=2, min_epochs=2, sampler=tpe"
    assert "[procedure_options.min_epochs]" in _text(cb.procedure_feedback(services, "asha", ids, values, GRID, 2, 8))
    assert "needs a budget" in _text(cb.procedure_feedback(services, "asha", ids, values, GRID, 6, None))
    assert "two or more objectives" in _text(cb.procedure_feedback(services, "nsga2", [], [], GRID, 6, 8))
    assert cb.wizard_options(ids, [None, 3, None, 2, None]) == {"eta": 3, "median_stop": {"grace_epochs": 2}}

    notice, path = cb.launch_workload(services, "w", "", "mlp", "digits", "asha", GRID, 6, 4, "val_accuracy", "max",
                                      None, {"eta": 2, "median_stop": {"grace_epochs": 2}}, True)
    assert notice.className == "ok", _text(notice)
    workload = services.get_workload(int(path.rsplit("/", 1)[1]))
    assert workload.advisor and workload.procedure_options == {"eta": 2, "median_stop": {"grace_epochs": 2}}
    notice, path = cb.launch_workload(services, "w", "", "mlp", "digits", "pbt", GRID, 6, None, "val_accuracy", "max",
                                      None, {"quantile": 0.9})
    assert path is no_update and "[procedure_options.quantile]" in _text(notice)


def _controls(tree) -> list:  # noqa: ANN001
    out = []
    for node in tree if isinstance(tree, list) else [tree]:
        if node is None or isinstance(node, str):
            continue
        if isinstance(getattr(node, "id", None), dict):
            out.append(node)
        out += _controls(getattr(node, "children", None) or [])
    return out


def test_the_advisor_panel_shows_suggestions_and_decides_them(services, digits) -> None:
    workload = services.launch_workload({"name": "a", "model": "mlp", "dataset": "digits", "procedure": "grid",
                                         "space": {"lr": {"type": "choice", "values": [0.01, 0.001]}},
                                         "max_epochs": 3, "advisor": True})
    assert "suggestions-card" in [getattr(c, "id", None) for c in layout.detail_page(workload, None).children]
    first, second = sorted(c.id for c in services.list_configs(workload.id))
    empty, shown = cb.suggestion_panel(services, workload.id)
    assert "No suggestions yet" in _text(empty) and shown == []
    for config_id in (first, second):
        services.route_decision(workload.id, Decision(DecisionKind.STOP, config_id, f"rank 2/2 for {config_id}",
                                                      key=f"asha:rung1:config{config_id}"))
    items, shown = cb.suggestion_panel(services, workload.id, shown)
    assert [i.id for i in items] == [f"suggestion-{s}" for s, _ in shown] and len(items) == 2
    assert f"stop config {second} (suggested by grid) · rank 2/2 for {second}" in _text(items[0])
    assert cb.suggestion_panel(services, workload.id, shown) == (no_update, no_update)  # unchanged: not redrawn
    accept_id, reject_id = shown[1][0], shown[0][0]
    notice = cb.decide_suggestion(services, workload.id, {"type": "suggestion-accept", "id": accept_id})
    assert notice.className == "ok" and f"suggestion {accept_id} accepted" in _text(notice)
    notice = cb.decide_suggestion(services, workload.id, {"type": "suggestion-reject", "id": reject_id})
    assert f"suggestion {reject_id} rejected" in _text(notice)
    notice = cb.decide_suggestion(services, workload.id, {"type": "suggestion-reject", "id": accept_id})
    assert notice.className == "error" and "already accepted by web" in _text(notice)
    assert cb.decide_suggestion(services, workload.id, None) is no_update
    items, _ = cb.suggestion_panel(services, workload.id, shown)
    assert "accepted by web" in _text(items) and "rejected by web" in _text(items)
    assert not any(isinstance(c, html.Button) for c in _controls(items))
    assert services.get_config(first).status == "stopped" and services.get_config(second).status == "queued"


def test_procedures_over_rest_and_the_cli_and_submit_flags(services, digits, tmp_path) -> None:
    from hopper.cli import main

    client = create_app(services, token=None, secret_key="s" * 32).test_client()
    listed = client.get("/api/v1/procedures", headers={"Host": "127.0.0.1"}).json
    assert [p["name"] for p in listed] == list(PROCEDURES)
    asha = next(p for p in listed if p["name"] == "asha")
    assert asha["decides"] and {o["name"] for o in asha["options"]} == {"min_epochs", "eta", "sampler"}

    settings = services.settings
    env = {"HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "COLUMNS": "250"}
    runner = CliRunner()
    result = runner.invoke(main, ["procedures"], env=env)
    assert result.exit_code == 0 and "resample_probability=0.25" in result.output and "median_stop" in result.output
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cli\nmodel: mlp\ndataset: digits\nmax_epochs: 4\nmax_configs: 4\n"
                    "space: {lr: {type: choice, values: [0.01, 0.001]}}\n")
    result = runner.invoke(main, ["submit", str(spec), "--procedure", "asha", "--option", "eta=2",
                                  "--option", "median_stop.grace_epochs=1", "--advisor"], env=env)
    assert result.exit_code == 0, result.output
    assert "(asha, advisor, 4 epochs, plan mop)" in result.output
    workload = services.list_workloads()[-1]
    assert workload.advisor and workload.procedure_options == {"eta": 2, "median_stop": {"grace_epochs": 1}}
    result = runner.invoke(main, ["submit", str(spec), "--procedure", "asha", "--option", "eta=1"], env=env)
    assert result.exit_code == 2 and "procedure_options.eta" in result.output

    services.route_decision(workload.id, Decision(DecisionKind.STOP, services.list_configs(workload.id)[0].id,
                                                  "asha: rung 1", key="k"))
    sid = services.list_suggestions(workload.id)[0].id
    result = runner.invoke(main, ["suggestions", "list", str(workload.id)], env=env)
    assert result.exit_code == 0 and "asha: rung 1" in result.output and "pending" in result.output
    result = runner.invoke(main, ["suggestions", "reject", str(workload.id), str(sid)], env=env)
    assert result.exit_code == 0 and f"suggestion {sid} rejected" in result.output
    result = runner.invoke(main, ["suggestions", "accept", str(workload.id), str(sid)], env=env)
    assert result.exit_code == 5 and "already rejected" in result.output


def test_lineage_importance_and_front_drawings(services, digits) -> None:
    configs = [{"id": 1, "hparams": {"lr": 0.01}, "status": "done", "cloned_from_config_id": None},
               {"id": 2, "hparams": {"lr": 0.001}, "status": "stopped", "cloned_from_config_id": None},
               {"id": 3, "hparams": {"lr": 0.008}, "status": "running", "cloned_from_config_id": 1},
               {"id": 4, "hparams": {"lr": 0.0064}, "status": "queued", "cloned_from_config_id": 3}]
    decisions = [{"kind": "exploit", "key": "pbt:exploit:config2@epoch2", "config_id": 2, "source_config_id": 1,
                  "result_config_id": 3},
                 {"kind": "stop", "key": "asha:rung1:config9", "config_id": 9, "source_config_id": None,
                  "result_config_id": None}]
    tree = layout.lineage_tree(configs, decisions)
    text = _text(tree)
    assert "config 3 (lr=0.008) · running · exploited config 1 at epoch 2, replacing config 2" in text
    assert "config 4 (lr=0.0064) · queued · cloned from config 3" in text
    root = tree.children.children[0]  # config 1 > config 3 > config 4, nested
    assert root.children[1].children[0].children[1].children[0].children[0].id == "lineage-4"
    assert "config 2 " not in text  # no clone of its own, not drawn as a root
    assert "No clones" in _text(layout.lineage_tree(configs[:2], []))

    bars = cb.figures.importance_figure(Importance(1, "val_accuracy", "fanova", 12,
                                                   {"lr": 0.7, "units": 0.2, "dropout": 0.1}))
    assert list(bars.data[0].y) == ["dropout", "units", "lr"] and "fANOVA" in bars.layout.title.text
    front = {"objectives": [{"metric": "val_accuracy", "direction": "max"}, {"metric": "flops", "direction": "min"}],
             "points": [{"config_id": 1, "values": {"val_accuracy": 0.9, "flops": 900.0}, "on_front": True},
                        {"config_id": 2, "values": {"val_accuracy": 0.8, "flops": 100.0}, "on_front": True},
                        {"config_id": 3, "values": {"val_accuracy": 0.7, "flops": 500.0}, "on_front": False}],
             "epochs": [{"epoch": 1, "hypervolume": 0.1, "front": [2]}, {"epoch": 2, "hypervolume": 0.4,
                                                                         "front": [1, 2]}]}
    scatter, volume = cb.figures.objective_front(front)
    assert list(scatter.data[1].x) == [0.8, 0.9] and list(scatter.data[0].text) == ["config 3"]
    assert list(volume.data[0].y) == [0.1, 0.4]

    single = services.launch_workload({"name": "s", "model": "mlp", "dataset": "digits", "procedure": "grid",
                                       "space": {"lr": {"type": "choice", "values": [0.01, 0.001]}}, "max_epochs": 2})
    bars, lineage = cb.learnt_figures(services, single.id)
    assert "configs" in bars.layout.annotations[0].text and "No clones" in _text(lineage)
    scatter, _ = cb.front_figures(services, single.id)
    assert "two or more" in scatter.layout.annotations[0].text
    multi = services.launch_workload({"name": "m", "model": "mlp", "dataset": "digits", "procedure": "grid",
                                      "space": {"lr": {"type": "choice", "values": [0.01, 0.001]}}, "max_epochs": 2,
                                      "objectives": {"val_accuracy": "max", "flops": "min"}})
    page = layout.detail_page(multi, None)
    assert "graph-hypervolume" in str(page) and "graph-hypervolume" not in str(layout.detail_page(single, None))
    scatter, volume = cb.front_figures(services, multi.id)
    assert "No config has every objective" in scatter.layout.annotations[0].text
