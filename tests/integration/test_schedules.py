"""Scheduled workloads fire each due run exactly once (racing firers, a restarted scheduler, missed runs), and an
ended workload's webhook reaches a real local receiver, retried after it first fails; `submit --wait` exits with
the workload's outcome; the schedules REST resource (400 / 422 / 404) and the `hopper schedule` commands.

One store for the module (the digits dataset is registered once); each test uses schedules of its own.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import update

from hopper.app import open_services
from hopper.cli import main
from hopper.engine.cron import utcnow
from hopper.engine.demo import ensure_digits
from hopper.engine.errors import ValidationError
from hopper.engine.status import ScheduleRunStatus, WebhookStatus, WorkloadStatus
from hopper.engine.store.models import ScheduleRow
from hopper.mop_scheduler import Scheduler
from hopper.mop_scheduler.chores import ScheduledChores
from hopper.rest import create_app
from tests.conftest import make_settings
from tests.support.running import RunningScheduler

# One tiny config, one epoch: the cheapest real workload (one worker, 64 units, digits).
TINY = {"name": "tiny", "model": "mlp", "dataset": "digits", "procedure": "grid",
        "space": {"lr": 0.003, "units": 16, "batch_size": 64}, "max_epochs": 1}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("schedules") / "home", workers=1)


@pytest.fixture(scope="module")
def services(settings):
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    yield services
    services.store.dispose()


def _launched_by(services, schedule_id: int) -> list[int]:
    return [w.id for w in services.list_workloads() if w.owner == f"schedule:{schedule_id}"]


def _set_next_run(services, schedule_id: int, when) -> None:  # noqa: ANN001
    """What a store looks like after the scheduler was down: the due time lies in the past."""
    with services.store.session() as session:
        session.execute(update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(next_run_at=when))


def test_a_schedule_refuses_what_a_launch_would_refuse_when_it_is_added(services):
    before = services.list_schedules()
    cases = [(("61 2 * * *", TINY), {}, "cron"), (("0 2 * * *", TINY), {"timezone": "Mars/Olympus"}, "timezone"),
             (("0 2 * * *", {**TINY, "dataset": "no-such-data"}), {}, "dataset"),
             (("0 2 * * *", {**TINY, "model": "vgg99"}), {}, "model"),
             (("0 2 * * *", {**TINY, "space": {"lr": {"type": "uniform", "low": 1, "high": 0}}}), {}, "space.lr"),
             (("0 2 * * *", {**TINY, "notify": {"webhook": "ftp://x"}}), {}, "notify.webhook"),
             (("0 2 * * *", {**TINY, "colour": "red"}), {}, "colour")]
    for args, kwargs, field in cases:
        with pytest.raises(ValidationError) as info:
            services.add_schedule(*args, **kwargs)
        assert (info.value.field or "").startswith(field), (field, info.value.message)
    assert services.list_schedules() == before

    added = services.add_schedule(" 0  2 * * * ", TINY, timezone="Europe/Berlin", name="nightly")
    assert (added.cron, added.timezone, added.enabled, added.name) == ("0 2 * * *", "Europe/Berlin", True, "nightly")
    assert added.next_run_at > utcnow() and added.spec == TINY  # what was written, no defaults filled in


def test_two_firers_racing_launch_each_due_run_exactly_once(services, settings):
    schedule = services.add_schedule("* * * * *", TINY, name="race")
    others = [open_services(settings) for _ in range(2)]  # separate engines, as two processes would have
    try:
        for round_ in range(3):
            now = services.get_schedule(schedule.id).next_run_at + timedelta(seconds=30)
            barrier, results = threading.Barrier(2), {}

            def fire(i, now=now, barrier=barrier, results=results):  # noqa: ANN001, ANN202
                barrier.wait()
                results[i] = others[i].fire_due_schedules(now=now, claimer=f"firer {i}")

            threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            fired = results[0] + results[1]
            assert len(fired) == 1 and fired[0].status == ScheduleRunStatus.LAUNCHED, (round_, results)
    finally:
        for other in others:
            other.store.dispose()
    runs = services.list_schedule_runs(schedule.id)
    assert len(runs) == 3 and len({r.due_at for r in runs}) == 3
    assert sorted(r.workload_id for r in runs) == sorted(_launched_by(services, schedule.id))
    services.set_schedule_enabled(schedule.id, False)  # the module's other tests fire what is due


def test_a_restarted_scheduler_fires_nothing_again_and_a_missed_run_fires_once(services, settings):
    schedule = services.add_schedule("0 * * * *", TINY, name="hourly")
    missed = utcnow().replace(microsecond=0) - timedelta(days=3)
    _set_next_run(services, schedule.id, missed)  # down for three days: 72 hourly runs missed
    first = Scheduler(services)
    first.chores.tick()
    runs = services.list_schedule_runs(schedule.id)
    assert [(r.due_at, r.status) for r in runs] == [(missed, ScheduleRunStatus.LAUNCHED)]
    assert services.get_schedule(schedule.id).next_run_at > utcnow()  # the next run is the next hour, not a replay
    workload = services.get_workload(runs[0].workload_id)
    assert workload.name.startswith("tiny ") and workload.status == WorkloadStatus.RUNNING

    restarted = open_services(settings)  # a new process: its own engine, its own scheduler
    try:
        Scheduler(restarted).chores.tick()
    finally:
        restarted.store.dispose()
    assert len(services.list_schedule_runs(schedule.id)) == 1 and _launched_by(services, schedule.id) == [workload.id]

    # disabled, a due schedule does not fire; enabled again it counts from now (what it missed never fires)
    services.set_schedule_enabled(schedule.id, False)
    _set_next_run(services, schedule.id, missed)
    assert services.fire_due_schedules() == []
    assert services.set_schedule_enabled(schedule.id, True).next_run_at > utcnow()
    assert services.fire_due_schedules() == [] and len(services.list_schedule_runs(schedule.id)) == 1
    services.set_schedule_enabled(schedule.id, False)  # the module's other tests fire what is due


def test_a_firer_that_died_after_its_claim_leaves_a_failed_run_that_is_never_relaunched(services):
    schedule = services.add_schedule("*/10 * * * *", TINY, name="crashy")
    due = services.get_schedule(schedule.id).next_run_at
    claim = services.store.schedules.claim(schedule.id, due, due + timedelta(minutes=10), "gone-host pid 1")
    assert claim.status == ScheduleRunStatus.CLAIMED  # ... and then that process was killed
    fired = services.fire_due_schedules(now=due + timedelta(minutes=15))  # 15 minutes later: a stale claim
    runs = {r.due_at: r for r in services.list_schedule_runs(schedule.id)}
    assert runs[due].status == ScheduleRunStatus.FAILED
    assert "not launched again" in runs[due].error and runs[due].workload_id is None
    # the following run fires as usual
    assert [r.due_at for r in fired if r.schedule_id == schedule.id] == [due + timedelta(minutes=10)]
    services.set_schedule_enabled(schedule.id, False)


# -- REST and CLI (on this module's store: its dataset is registered once) ----------------------------------------
TOKEN = "schedule-token"
SPEC = {"name": "nightly", "model": "mlp", "dataset": "digits", "space": {"lr": 0.01, "units": 32}, "max_epochs": 1}


@pytest.fixture
def client(services):
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def _error(response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.json
    error = response.json["error"]
    if field is not None:
        assert (error["field"] or "").startswith(field), error
    return error["message"]


def test_schedule_endpoints_and_their_errors(client, services):
    # 400: does not match the document (no cron, an unknown key, a spec that is not a workload spec, enabled: "yes")
    _error(client.post("/api/v1/schedules", json={"spec": SPEC}), 400, "cron")
    _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": SPEC, "every": "day"}), 400, "every")
    _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": {**SPEC, "max_epochs": 0}}), 400,
           "spec.max_epochs")
    _error(client.post("/api/v1/schedules", data="0 2 * * *"), 400, "body")
    # 422: well-formed, refused by the service
    assert "6 fields" in _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * * *", "spec": SPEC}), 422,
                                "cron")
    _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": SPEC, "timezone": "Berlin"}), 422,
           "timezone")
    assert "does not exist" in _error(client.post("/api/v1/schedules", json={
        "cron": "0 2 * * *", "spec": {**SPEC, "dataset": "gone"}}), 422, "dataset")
    known = {s["id"] for s in client.get("/api/v1/schedules").json}

    created = client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": SPEC, "timezone": "Europe/Berlin"})
    assert created.status_code == 201, created.json
    schedule = created.json
    assert (schedule["name"], schedule["cron"], schedule["timezone"], schedule["enabled"]) == (
        "nightly", "0 2 * * *", "Europe/Berlin", True)
    assert schedule["spec"] == SPEC and schedule["created_by"] == "admin"
    sid = schedule["id"]
    assert {s["id"] for s in client.get("/api/v1/schedules").json} == known | {sid}
    assert client.get(f"/api/v1/schedules/{sid}").json == schedule
    _error(client.get("/api/v1/schedules/999"), 404, "schedule_id")
    _error(client.patch("/api/v1/schedules/999", json={"enabled": False}), 404)
    _error(client.get("/api/v1/schedules/999/runs"), 404)
    _error(client.patch(f"/api/v1/schedules/{sid}", json={"enabled": "sometimes"}), 400, "enabled")
    _error(client.patch(f"/api/v1/schedules/{sid}", json={}), 400, "enabled")

    assert client.patch(f"/api/v1/schedules/{sid}", json={"enabled": False}).json["enabled"] is False
    assert client.get(f"/api/v1/schedules/{sid}/runs").json == []
    assert client.patch(f"/api/v1/schedules/{sid}", json={"enabled": True}).json["enabled"] is True
    due = services.get_schedule(sid).next_run_at
    [run] = [r for r in services.fire_due_schedules(now=due + timedelta(seconds=1)) if r.schedule_id == sid]
    runs = client.get(f"/api/v1/schedules/{sid}/runs").json
    assert [(r["id"], r["status"], r["workload_id"]) for r in runs] == [(run.id, "launched", run.workload_id)]
    assert client.get(f"/api/v1/workloads/{run.workload_id}").json["owner"] == f"schedule:{sid}"

    document = client.get("/api/openapi.json").json
    post = document["paths"]["/api/v1/schedules"]["post"]
    assert {"201", "400", "422"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ScheduleBody"}
    patch = document["paths"]["/api/v1/schedules/{schedule_id}"]["patch"]
    assert {"200", "400", "404", "422"} <= set(patch["responses"])
    assert {"200", "404"} <= set(document["paths"]["/api/v1/schedules/{schedule_id}/runs"]["get"]["responses"])


def test_schedule_commands(services, settings, tmp_path):
    env = {"HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_WORKERS": "1", "COLUMNS": "200"}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "name": "weekly report"}))
    runner = CliRunner()
    bad = runner.invoke(main, ["schedule", "add", "0 2 * *", str(spec)], env=env)
    assert bad.exit_code == 2 and "has 4 fields" in bad.stderr and "Traceback" not in bad.output
    bad = runner.invoke(main, ["schedule", "add", "0 2 * * *", str(spec), "--tz", "Berlin"], env=env)
    assert bad.exit_code == 2 and "unknown time zone 'Berlin'" in bad.stderr
    added = runner.invoke(main, ["schedule", "add", "0 9 * * 1", str(spec), "--tz", "Europe/Berlin", "--name", "mon"],
                          env=env)
    assert added.exit_code == 0, added.output
    sid = int(added.stdout.split()[1])
    assert f"schedule {sid} mon added: 0 9 * * 1 (Europe/Berlin), next run " in added.stdout
    assert " 09:00 CE" in added.stdout  # CET or CEST: the cron is read in Berlin
    listed = runner.invoke(main, ["schedule", "list"], env=env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip() == str(sid))
    assert "mon" in row and "0 9 * * 1" in row and "yes" in row
    assert runner.invoke(main, ["schedule", "disable", str(sid)], env=env).stdout.strip() == f"schedule {sid}: disabled"
    assert services.get_schedule(sid).enabled is False
    assert "enabled, next run" in runner.invoke(main, ["schedule", "enable", str(sid)], env=env).stdout
    assert runner.invoke(main, ["schedule", "disable", "999"], env=env).exit_code == 3
    [run] = [r for r in services.fire_due_schedules(now=services.get_schedule(sid).next_run_at) if r.schedule_id == sid]
    runs = runner.invoke(main, ["schedule", "runs", str(sid)], env=env)
    assert runs.exit_code == 0 and "launched" in runs.stdout and f" {run.workload_id} " in runs.stdout
    assert runner.invoke(main, ["schedule", "runs", "999"], env=env).exit_code == 3
    services.set_schedule_enabled(sid, False)


def test_schedules_page_callbacks(services):
    from hopper.webui import schedules_page as page

    assert "Error [cron]: cron expression '0 25 * * *' is not valid" in page.add_schedule(
        services, "", "0 25 * * *", "UTC", page.EXAMPLE_SPEC).children
    assert "Error [spec]: spec is not valid YAML" in page.add_schedule(services, "", "0 2 * * *", "UTC",
                                                                      "name: [unclosed").children
    assert "Error [spec]: the workload spec is empty" in page.add_schedule(services, "", "0 2 * * *", "UTC", "").children
    assert "Error [dataset]" in page.add_schedule(services, "", "0 2 * * *", "UTC",
                                                  page.EXAMPLE_SPEC.replace("digits", "nothing")).children
    before = len(services.list_schedules())
    added = page.add_schedule(services, "from the page", "30 6 * * *", "America/New_York", page.EXAMPLE_SPEC)
    assert added.className == "ok" and "from the page" in added.children and len(services.list_schedules()) == before + 1
    sid = services.list_schedules()[-1].id
    [row] = [r for r in page.schedule_rows(services) if r["id"] == sid]
    assert (row["cron"], row["time zone"], row["enabled"]) == ("30 6 * * *", "America/New_York", "yes")
    assert row["next run"].endswith((" 06:30 EST", " 06:30 EDT"))
    assert "select a schedule" in page.toggle_schedule(services, []).children
    assert page.toggle_schedule(services, [sid]).children.endswith(": disabled")
    assert services.get_schedule(sid).enabled is False
    assert page.toggle_schedule(services, [sid]).children.endswith(": enabled")
    [run] = [r for r in services.fire_due_schedules(now=services.get_schedule(sid).next_run_at) if r.schedule_id == sid]
    assert page.schedule_run_rows(services, [sid]) == [{
        "run": run.id, "due": f"{run.due_at:%Y-%m-%d %H:%M} UTC", "status": "launched",
        "workload": f"[{run.workload_id}](/workloads/{run.workload_id})", "claimed by": run.claimed_by, "error": ""}]
    assert page.schedule_run_rows(services, None) == [] and page.schedule_run_rows(services, [999]) == []
    services.set_schedule_enabled(sid, False)


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that refuses its first request with a 500 and accepts the rest."""

    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append({"body": body, "delivery": self.headers.get("X-Hopper-Delivery")})
        self.send_response(500 if len(type(self).received) == 1 else 200)
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.mark.slow
def test_submit_wait_exits_with_the_outcome_and_the_webhook_is_retried_until_accepted(services, settings, tmp_path):
    # The workloads the tests above launched are not this test's: end them, so the worker trains only this one.
    for workload in services.list_workloads():
        if workload.status == WorkloadStatus.RUNNING:
            services.store.workloads.fail(workload.id, "ended by the test")
    for schedule in services.list_schedules():
        if schedule.enabled:
            services.set_schedule_enabled(schedule.id, False)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_port}/hooks/hopper"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "name": "ci run", "notify": {"webhook": url}}))
    env = {"HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_WORKERS": "1", "COLUMNS": "200"}
    submit = ["submit", "--wait", "--poll", "0.2", str(spec)]
    runner = CliRunner()
    try:
        running = RunningScheduler(services)
        running.scheduler.chores = ScheduledChores(services, interval=0.1, backoff=0.2, timeout=5)
        with running:
            done = runner.invoke(main, submit, env=env)
            assert done.exit_code == 0, done.output
            lines = done.stdout.splitlines()
            wid = int(lines[0].split()[1])
            assert any(f"workload {wid}: running, 0/1 configs finished" in line for line in lines)
            assert lines[-1].startswith(f"workload {wid}: done, 1/1 configs finished, best val_accuracy=")
            running.wait_for(lambda: len(_Receiver.received) >= 2, timeout=60, what="the webhook's retry")
        first, second = _Receiver.received[:2]
        assert first["delivery"] == second["delivery"] and (first["body"]["attempt"], second["body"]["attempt"]) == (1, 2)
        summary = second["body"]
        assert summary["event"] == "workload.done" and summary["workload"]["id"] == wid
        assert summary["workload"]["name"] == "ci run" and summary["configs"] == {"done": 1}
        assert summary["best"]["hparams"] == TINY["space"] and 0 < summary["best"]["metrics"]["val_accuracy"] <= 1
        assert summary["best"]["objective"]["metric"] == "val_accuracy" and summary["epochs"]["trained"] == 1
        assert summary["compute"]["worker_seconds"] > 0 and summary["compute"]["sub_epochs"] >= 1
        assert summary["started_at"] <= summary["finished_at"]
        [delivery] = services.store.webhooks.list([wid])
        assert (delivery.status, delivery.attempts, delivery.last_error) == (WebhookStatus.DELIVERED, 2,
                                                                            "HTTP 500 Internal Server Error")
        # a restarted notifier neither queues nor sends it again
        assert services.store.webhooks.enqueue_ended() == [] and ScheduledChores(services).deliver_due() == []
        assert len(_Receiver.received) == 2

        # no scheduler now: the next workload is waited for until it fails (as a broken procedure fails it)
        def fail_it_once_launched() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                launched = [w.id for w in services.list_workloads() if w.id > wid]
                if launched:
                    services.store.workloads.fail(launched[0], "procedure failed: the sampler ran out of ideas")
                    return
                time.sleep(0.05)

        failer = threading.Thread(target=fail_it_once_launched, daemon=True)
        failer.start()
        failed = runner.invoke(main, ["submit", "--wait", "--poll", "0.1", str(spec)], env=env)
        failer.join(10)
        assert failed.exit_code == 12, failed.output
        assert f"workload {wid + 1} failed: procedure failed: the sampler ran out of ideas" in \
            " ".join(failed.stderr.split())
    finally:
        receiver.shutdown()
