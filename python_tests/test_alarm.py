"""DegradationAlarm on synthetic score series, inside DSEMonitor, in `sdd-fast train
--on-degrade warn|stop|rollback` (and --resume after them), and in the Lightning callback."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from helpers import clustered_feats

import sdd_fast
from sdd_fast.cli import main as cli_main
from sdd_fast.integrations.alarm import DegradationAlarm
from sdd_fast.train.checkpoint import load_checkpoint
from sdd_fast.train.degrade import STOP_EXIT_CODE


def row(step, value, dim=0.5):
    """A row whose recombined score is `value`: dim is constant, so lambda = 0 and the score is
    the relevance (inter); during the warm-up it is value + dim."""
    return {"step": step, "dse": value + dim, "inter": value, "intra_image": 0.0, "intra_batch": 0.0, "dim": dim}


def run_series(alarm, values, start=0):
    """Feeds values as rows of steps start, start+1, ...; returns the steps whose row fired."""
    fired = []
    for step, value in enumerate(values, start):
        if "alarm" in alarm.observe(row(step, value)):
            fired.append(step)
    return fired


# ---- the alarm on synthetic series ------------------------------------------------------------------

RISE = [1.0, 2.0, 3.0, 4.0, 5.0]  # steps 0-4: best 5, spread ~1.4


@pytest.mark.parametrize("patience", [1, 2, 3, 5])
def test_fires_after_exactly_patience_low_evaluations(patience):
    alarm = DegradationAlarm(patience=patience, margin=0.5, warmup=0, smoothing=1)
    assert run_series(alarm, RISE + [0.0] * (patience - 1)) == []
    assert not alarm.fired and alarm.take() is None
    fields = alarm.observe(row(len(RISE) + patience - 1, 0.0))
    assert fields["alarm"] == "warn" and fields["score"] == 0.0
    event = alarm.take()
    assert alarm.fired and alarm.events == [event] and alarm.take() is None
    assert event["step"] == len(RISE) + patience - 1 and event["best_step"] == 4 and event["best"] == 5.0
    assert event["threshold"] == pytest.approx(5.0 - 0.5 * event["spread"])
    # It counts afresh: the next firing takes `patience` more low evaluations.
    assert run_series(alarm, [0.0] * patience, start=20) == [20 + patience - 1]


def test_a_recovered_score_resets_the_count():
    alarm = DegradationAlarm(patience=3, margin=0.5, warmup=0, smoothing=1)
    assert run_series(alarm, RISE + [0.0, 0.0, 5.0, 0.0, 0.0, 4.9, 0.0, 0.0]) == []
    assert run_series(alarm, [0.0], start=20) == [20]


def test_within_the_margin_is_not_low():
    alarm = DegradationAlarm(patience=1, margin=0.5, warmup=0, smoothing=1)
    run_series(alarm, RISE)
    spread = alarm.selector.spread
    assert run_series(alarm, [5.0 - 0.4 * spread]) == []
    assert run_series(alarm, [5.0 - 0.7 * spread], start=6) == [6]
    zero = DegradationAlarm(patience=1, margin=0.0, warmup=0, smoothing=1)
    assert run_series(zero, [1.0, 1.0, 0.999]) == [2]  # margin 0: any fall below the best


def test_never_fires_during_the_warmup_and_counts_only_after_it():
    alarm = DegradationAlarm(patience=2, margin=0.0, warmup=6, smoothing=1)
    assert run_series(alarm, RISE + [0.0]) == []  # six evaluations: all in the warm-up
    assert alarm.selector.in_warmup and alarm.low == 0 and alarm.selector.smoothed == 0.5  # plain DSE
    assert run_series(alarm, [0.0, 0.0], start=6) == [7]  # two low ones after it
    assert not alarm.selector.in_warmup


def test_smoothing_ignores_a_single_bad_evaluation():
    alarm = DegradationAlarm(patience=1, margin=0.0, warmup=0, smoothing=3)
    assert run_series(alarm, RISE + [5.0, -9.0, 5.0, 5.0]) == []  # median of 3 hides one outlier
    assert run_series(alarm, [-9.0, -9.0], start=9) == [10]


def test_non_finite_evaluations_neither_break_nor_extend_a_low_streak():
    alarm = DegradationAlarm(patience=2, margin=0.5, warmup=0, smoothing=1)
    run_series(alarm, RISE + [0.0])
    assert alarm.observe(row(6, math.nan)) == {} and alarm.low == 1
    assert alarm.observe({"step": 7, "loss": 1.0}) == {}  # a row without DSE
    assert run_series(alarm, [0.0], start=8) == [8]


def test_best_is_among_eligible_steps_and_rollback_restarts_the_window():
    alarm = DegradationAlarm(patience=1, margin=0.0, action="rollback", warmup=0, smoothing=2,
                             eligible=lambda step: step % 2 == 0)
    assert run_series(alarm, [1.0, 9.0, 2.0, 3.0]) == [3]  # smoothed 1, 5, 5.5, 2.5: best 5.5 at step 2
    event = alarm.take()
    assert event["action"] == "rollback" and event["best_step"] == 2
    alarm.after_rollback()
    # Without the restart the window would mix 3.0 (abandoned weights) into the next score.
    assert run_series(alarm, [5.5], start=4) == [] and alarm.selector.smoothed == 5.5


def test_state_dict_round_trip_continues_identically():
    values = RISE + [0.0, 0.0, 6.0, 0.0, 0.0, 0.0, 0.0]
    whole = DegradationAlarm(patience=2, margin=0.2, warmup=2, smoothing=2)
    fired = run_series(whole, values)
    first = DegradationAlarm(patience=2, margin=0.2, warmup=2, smoothing=2)
    head = run_series(first, values[:6])
    resumed = DegradationAlarm(patience=2, margin=0.2, warmup=2, smoothing=2)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))  # plain JSON-able state
    assert head + run_series(resumed, values[6:], start=6) == fired and fired
    assert resumed.state_dict() == whole.state_dict()


def test_bad_settings_are_refused():
    for kwargs, word in [({"patience": 0}, "patience"), ({"margin": -1.0}, "margin"), ({"margin": math.nan}, "margin"),
                         ({"action": "explode"}, "action"), ({"warmup": -1}, "warmup")]:
        with pytest.raises(ValueError, match=word):
            DegradationAlarm(**kwargs)


# ---- in a plain loop, through DSEMonitor -------------------------------------------------------------


class ListLogger:
    def __init__(self):
        self.rows = []

    def log(self, row):
        self.rows.append(row)

    def close(self):
        pass


def test_monitor_feeds_the_alarm_one_call_late_and_rows_carry_it():
    sink = ListLogger()
    alarm = DegradationAlarm(patience=2, margin=0.5, warmup=0, smoothing=1)
    monitor = sdd_fast.DSEMonitor(every=1, loggers=[sink], alarm=alarm)
    values = RISE + [0.0, 0.0, 0.0]
    for step, value in enumerate(values):
        components = torch.tensor([row(step, value)[k] for k in ("dse", "inter", "intra_image", "intra_batch",
                                                                 "dim")])
        monitor.log(step, measured=(components, 0.0), loss=torch.tensor(1.0))  # [5] as measure() returns
        if step == 6:
            assert not alarm.fired  # step 6's row is still pending: read at the next call
    assert alarm.fired and alarm.events[0]["step"] == 6
    monitor.close()
    assert [r.get("alarm") for r in sink.rows] == [None] * 6 + ["warn", None]
    assert [r["score"] for r in sink.rows] == pytest.approx(values)
    # Real patch tokens go the same way: a row with components gets a score.
    feats, _ = clustered_feats(images=8, classes=3, patches=48, dim=32)
    monitor = sdd_fast.DSEMonitor(every=1, loggers=[sink], alarm=DegradationAlarm(), dse_options={"global_k": 6})
    monitor.log(0, feats)
    monitor.flush()
    assert math.isfinite(sink.rows[-1]["score"])


# ---- sdd-fast train --on-degrade ---------------------------------------------------------------------

FAST = ["--img-size", "32", "--batch-size", "8", "--no-progress", "--warmup-steps", "0"]
# margin 0 and patience 1 at lr 1e-2: the first smoothed score below the best fires (step 2 of seed 0).
TRIGGER = ["--steps", "8", "--save-every", "1", "--lr", "1e-2", "--alarm-patience", "1", "--alarm-margin", "0",
           "--alarm-warmup", "0"]


def train(out, *args):
    """`sdd-fast train` in this process: (exit code, metrics rows)."""
    try:
        code = cli_main(["train", "--out", str(out), *FAST, *args])
    except SystemExit as exit_info:
        code = exit_info.code
    path = out / "metrics.jsonl"
    return code, [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """The run without an alarm: what warn (and stop + resume) must reproduce."""
    out = tmp_path_factory.mktemp("plain")
    code, rows = train(out, *TRIGGER)
    assert code == 0
    return rows


def test_warn_writes_alarm_rows_and_alarm_json_and_changes_nothing_else(tmp_path, plain_run):
    code, rows = train(tmp_path, *TRIGGER, "--on-degrade", "warn")
    assert code == 0
    warned = [r["step"] for r in rows if r.get("alarm") == "warn"]
    report = json.loads((tmp_path / "alarm.json").read_text())
    assert warned and [e["step"] for e in report["events"]] == warned
    assert all(e["taken"] == "warn" for e in report["events"]) and report["stopped"] is False
    assert all("score" in r for r in rows)
    assert [r["loss"] for r in rows] == [r["loss"] for r in plain_run]  # warn never touches training


def test_stop_saves_a_checkpoint_writes_why_and_resume_goes_on(tmp_path, plain_run, capsys):
    code, rows = train(tmp_path, *TRIGGER, "--on-degrade", "stop")
    assert code == STOP_EXIT_CODE == 3
    report = json.loads((tmp_path / "alarm.json").read_text())
    stopped = report["events"][0]["at_step"]
    assert report["stopped"] and report["exit_code"] == 3 and report["events"][0]["taken"] == "stop"
    assert report["checkpoint"].endswith(f"step_{stopped:06d}.pt") and stopped < 8
    assert load_checkpoint(report["checkpoint"])["step"] == stopped
    assert [r["step"] for r in rows] == list(range(1, stopped + 1)) and rows[-1].get("alarm") == "stop"
    assert "degradation alarm" in capsys.readouterr().err
    # The alarm options are not run-defining: resume the stopped run without the alarm.
    code, resumed = train(tmp_path, *TRIGGER, "--on-degrade", "none", "--resume")
    assert code == 0 and [r["step"] for r in resumed] == list(range(1, 9))
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in plain_run], rel=1e-5)


ROLLBACK = [*TRIGGER, "--on-degrade", "rollback", "--rollback-lr-scale", "0.5", "--rollback-dse-beta", "0.01",
            "--max-rollbacks", "2"]


@pytest.fixture(scope="module")
def rollback_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rollback")
    code, rows = train(out, *ROLLBACK)
    assert code == 0
    return out, rows, json.loads((out / "alarm.json").read_text())


def test_rollback_reloads_the_best_checkpoint_and_changes_lr_and_beta(rollback_run, plain_run):
    out, rows, report = rollback_run
    done = [e for e in report["events"] if e["taken"] == "rollback"]
    assert len(done) == 2 == report["rollbacks"] and report["lr_scale"] == 0.25 and report["dse_beta"] == 0.01
    assert [e["taken"] for e in report["events"]][2:] == ["warn"] * (len(report["events"]) - 2)  # max 2
    first = done[0]
    at, best = first["at_step"], first["best_step"]
    assert best < at and first["rollback_to"].endswith(f"step_{best:06d}.pt")
    # The rollback happens before step `at`'s checkpoint: that checkpoint holds the best one's state.
    reloaded, source = (load_checkpoint(out / "checkpoints" / f"step_{s:06d}.pt") for s in (at, best))
    for name, value in source["method"].items():
        assert torch.equal(reloaded["method"][name], value), name
    assert reloaded["optimizer"]["state"][0]["step"] == source["optimizer"]["state"][0]["step"]
    assert reloaded["degrade"]["rollbacks"] == 1 and reloaded["degrade"]["lr_scale"] == 0.5
    by_step = {r["step"]: r for r in rows}
    plain = {r["step"]: r for r in plain_run}
    assert all(by_step[s]["lr"] == plain[s]["lr"] for s in range(1, at + 1))
    assert by_step[at + 1]["lr"] == pytest.approx(0.5 * plain[at + 1]["lr"])
    assert "reg_dse" not in by_step[at] and "reg_dse" in by_step[at + 1]  # the regulariser is on


@pytest.mark.parametrize("cut", ["before", "after"])
def test_resume_after_a_rollback_reproduces_the_uninterrupted_run(rollback_run, tmp_path, cut):
    out, rows, report = rollback_run
    at = report["events"][0]["at_step"] if report["events"][0]["taken"] == "rollback" else None
    assert at is not None
    stop = at - 1 if cut == "before" else at  # the checkpoint before the first rollback, or its own
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    for step in range(stop + 1):
        shutil.copy(out / "checkpoints" / f"step_{step:06d}.pt", part / "checkpoints")
    kept = [json.dumps(r) for r in rows if r["step"] <= stop + 1]  # one row past the checkpoint: dropped
    (part / "metrics.jsonl").write_text("\n".join(kept) + "\n")
    code, resumed = train(part, *ROLLBACK, "--resume")
    assert code == 0 and [r["step"] for r in resumed] == [r["step"] for r in rows]
    for key in ("loss", "lr", "dse", "score"):
        assert [r[key] for r in resumed] == pytest.approx([r[key] for r in rows], rel=1e-5), key
    assert [r.get("alarm") for r in resumed] == [r.get("alarm") for r in rows]
    events = json.loads((part / "alarm.json").read_text())["events"]
    assert [(e["step"], e["taken"]) for e in events] == [(e["step"], e["taken"]) for e in report["events"]]


@pytest.mark.parametrize("args,words", [
    (["--on-degrade", "warn", "--dse-every", "0"], ("--on-degrade", "--dse-every")),
    (["--on-degrade", "rollback", "--dse-every", "2", "--save-every", "3"], ("--save-every 3", "multiple")),
    (["--alarm-patience", "0"], ("--alarm-patience",)),
    (["--rollback-lr-scale", "0"], ("--rollback-lr-scale",)),
    (["--rollback-dse-beta", "-0.5"], ("--rollback-dse-beta",)),
    (["--on-degrade", "panic"], ("--on-degrade",)),
])
def test_bad_alarm_options_are_one_error_line(tmp_path, capsys, args, words):
    code, _ = train(tmp_path, "--steps", "2", *args)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "checkpoints").exists()


# ---- the Lightning callback ----------------------------------------------------------------------------


def test_lightning_callback_warns_and_stops_the_trainer(tmp_path):
    L = pytest.importorskip("lightning")
    from sdd_fast.integrations.lightning import DSECallback

    good, _ = clustered_feats(images=8, classes=3, patches=24, dim=16)  # [8, 24, 16]: clear structure

    class Degrading(L.LightningModule):
        """Patch tokens with structure for 4 steps, then collapsed ones."""

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def training_step(self, batch, batch_idx):
            tokens = good if batch_idx < 4 else torch.ones_like(good) + 1e-3 * torch.randn_like(good)
            tokens = tokens * self.scale
            return {"loss": (self.scale - 1) ** 2, "patch_tokens": tokens}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(64, 1)), batch_size=1)
    alarm = DegradationAlarm(patience=2, margin=0.5, action="stop", warmup=0, smoothing=1)
    trainer = L.Trainer(max_steps=40, callbacks=[DSECallback(every=1, global_k=4, group=4, alarm=alarm)],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    with pytest.warns(UserWarning, match="degradation alarm"):
        trainer.fit(Degrading(), data)
    assert alarm.fired and alarm.events[0]["action"] == "stop"
    assert trainer.global_step < 10  # stopped long before max_steps
    with pytest.raises(ValueError, match="rollback"):
        DSECallback(alarm=DegradationAlarm(action="rollback"))


@pytest.mark.slow
def test_under_torchrun_every_rank_stops_at_the_same_step(tmp_path):
    """Two processes with torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR / PORT; started
    here rather than by the torchrun agent, which ends the other ranks with SIGTERM as soon as
    one has exited non-zero, so their own exit codes could not be seen): the all-reduced DSE
    rows are the same on both ranks, so both alarms fire at the same step and both processes
    exit with STOP_EXIT_CODE. A rank that went on would hang in the next gradient all-reduce
    (the timeout would fail the test)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "sdd_fast.cli", "train", "--out", str(tmp_path), *FAST, *TRIGGER, "--on-degrade",
           "stop", "--device", "cpu"]
    def env(rank):
        return {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}

    procs = [subprocess.Popen(cmd, env=env(rank), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [STOP_EXIT_CODE, STOP_EXIT_CODE], outputs[0][1][-3000:]
    report = json.loads((tmp_path / "alarm.json").read_text())
    stopped = report["events"][0]["at_step"]
    assert report["stopped"] and stopped < 8
    assert json.loads(outputs[0][0].strip().splitlines()[-1])["stopped_at"] == stopped and not outputs[1][0].strip()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, stopped + 1))  # written once, by rank 0
    assert load_checkpoint(tmp_path / "checkpoints" / f"step_{stopped:06d}.pt")["step"] == stopped
