"""CLI conventions against real services: --version, --json, shell completion, -v/-q, --profile, and one
sentence for each way a user gives the wrong file."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import cloudburst
from local_cluster import cli, start_workers, stop
from test_client import scenario_file
from test_scenarios import NET3
from waiting import wait_until


def test_version_names_the_package_version(cluster):
    shown = cli(cluster, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"cloudburst {cloudburst.__version__}"


def test_json_output_of_submit_status_list_and_summary(cluster):
    workers = start_workers(cluster)
    try:
        submitted = cli(cluster, "submit", str(NET3), scenario_file(cluster), "--name", "js", "--wait", "--json")
    finally:
        stop(workers)
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout) == {"ensemble": "js", "members": 12, "uploaded": True, "progress": {
        "members": 12, "finished": 12, "failed": 0, "running": 0, "unbalanced": 0, "queued": 0, "done": True}}
    status = json.loads(cli(cluster, "status", "js", "--json").stdout)
    assert (status["ensemble"], status["finished"], status["failed"], status["failures"]) == ("js", 12, 0, [])
    listed = json.loads(cli(cluster, "list", "--json").stdout)
    assert [(row["ensemble"], row["members"], row["finished"]) for row in listed] == [("js", 12, 12)]
    summary = json.loads(cli(cluster, "summary", "js", "--json", "--top", "3").stdout)
    assert len(summary) == 3 and summary[0]["pressure_min"] <= summary[1]["pressure_min"] <= summary[2]["pressure_min"]


def test_delete_asks_unless_told_yes_then_removes_everything_and_list_shows_sizes(cluster):
    submitted = cli(cluster, "submit", str(NET3), scenario_file(cluster), "--name", "doomed")
    assert submitted.returncode == 0, submitted.stderr
    listed = cli(cluster, "list")
    assert "doomed" in listed.stdout and "size" in listed.stdout.splitlines()[0]
    unconfirmed = cli(cluster, "delete", "doomed")  # no terminal to ask on
    assert unconfirmed.returncode == 2 and unconfirmed.stderr == \
        "cloudburst: deleting doomed removes its results for good: add --yes to confirm\n"
    deleted = cli(cluster, "delete", "doomed", "--yes")
    assert deleted.returncode == 0 and deleted.stdout.startswith("ensemble doomed deleted: 12 queued members removed")
    assert cluster["redis"].llen("rq:queue:cloudburst") == 0
    assert re.search(r"^doomed .* deleted$", cli(cluster, "list").stdout, re.M)
    gone = cli(cluster, "status", "doomed")
    assert gone.returncode == 2 and "'doomed' was deleted at " in gone.stderr


def test_prune_deletes_the_ensembles_past_the_retention_period(cluster):
    for name in ("old", "new"):
        assert cli(cluster, "submit", str(NET3), scenario_file(cluster), "--name", name).returncode == 0
    cluster["redis"].hset("cloudburst:ensemble:old", "created_at", "2020-01-01T00:00:00+00:00")
    assert cli(cluster, "prune").stdout.strip() == "no ensemble is past the retention period"  # retention 0: keep
    kept = {**cluster, "env": {**cluster["env"], "CLOUDBURST_RETENTION_DAYS": "30"}}
    refused = cli(kept, "prune")
    assert refused.returncode == 2 and "pruning deletes 1 ensembles for good (old)" in refused.stderr
    pruned = cli(kept, "prune", "--yes")
    assert pruned.returncode == 0 and pruned.stdout.strip() == "1 ensembles deleted: old"
    listed = cli(cluster, "list").stdout.splitlines()[1:]  # oldest first; a pruned one is shown deleted
    assert [(line.split()[0], line.split()[-1]) for line in listed] == [("old", "deleted"), ("new", "running")]


def test_quiet_shows_no_progress_and_verbose_shows_wntr_load_warnings(cluster, tmp_path):
    # Net3 with a curve no element uses: wntr warns "Not all curves were used" while reading it.
    model = tmp_path / "unused-curve.inp"
    model.write_text(NET3.read_text().replace("[CURVES]", "[CURVES]\n UNUSED  1  1", 1))
    quiet = cli(cluster, "-q", "submit", str(model), scenario_file(cluster), "--name", "quiet")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.strip() == "quiet"
    default = cli(cluster, "submit", str(model), scenario_file(cluster), "--name", "default")
    assert "Not all curves" not in default.stderr and "12 members enqueued" in default.stderr
    verbose = cli(cluster, "-v", "submit", str(model), scenario_file(cluster), "--name", "verbose")
    assert verbose.returncode == 0 and "Not all curves were used" in verbose.stderr


def test_a_profile_in_the_settings_file_addresses_another_cluster(cluster, tmp_path):
    env = cluster["env"]
    table = "\n".join(f'{key.removeprefix("CLOUDBURST_").lower()} = "{value}"' for key, value in env.items()
                      if key != "CLOUDBURST_CONFIG")
    settings = tmp_path / "client.toml"
    settings.write_text(table.replace(env["CLOUDBURST_REDIS_URL"], "redis://127.0.0.1:1/0") + f"\n\n[profiles.test]\n"
                        f'redis_url = "{env["CLOUDBURST_REDIS_URL"]}"\n')
    only_file = {**cluster, "env": {"CLOUDBURST_CONFIG": str(settings)}}
    assert cli(only_file, "list").returncode == 3  # the top-level cluster does not answer
    assert cli(only_file, "--profile", "test", "list").returncode == 0
    unknown = cli(only_file, "--profile", "prod", "list")
    assert unknown.returncode == 3 and unknown.stderr.strip() == \
        f"cloudburst: {settings} has no profile 'prod' (profiles: test)"


def test_wrong_files_get_one_sentence_and_exit_2(cluster, tmp_path):
    table = tmp_path / "pressures.csv"
    table.write_text("node,pressure\n10,42.0\n")
    as_model = cli(cluster, "submit", str(table), scenario_file(cluster))
    assert as_model.returncode == 2 and "(%s)" not in as_model.stderr
    assert as_model.stderr.strip() == (f"cloudburst: {table} is not an EPANET .inp file: it has no [JUNCTIONS], "
                                       "[PIPES], [RESERVOIRS] or [TANKS] section")
    plot_one = cli(cluster, "results", "any", "--element", "node:10", "--member", "3", "--plot", "fan.png")
    assert plot_one.returncode == 2 and plot_one.stderr == \
        "cloudburst: --plot draws the percentiles across members; leave out --member to plot\n"
    swapped = cli(cluster, "submit", scenario_file(cluster), str(NET3))
    assert swapped.returncode == 2 and "give the model (.inp) first, then the scenario" in swapped.stderr
    assert len(swapped.stderr.strip().splitlines()) == 1


def completions(cluster, *words: str) -> list[str]:
    script = cli(cluster, "completion", "bash").stdout
    line = " ".join(words)
    probe = (f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _cloudburst; '
             'printf "%s\\n" "${COMPREPLY[@]}"')
    return subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_offers_commands_and_each_commands_options(cluster):
    assert completions(cluster, "cloudburst", "su") == ["submit", "summary"]
    assert completions(cluster, "cloudburst", "--profile", "lab", "results", "--el") == ["--element"]
    assert completions(cluster, "cloudburst", "-v", "submit", "--") == ["--help", "--json", "--wait", "--check",
                                                                       "--name", "--start", "--timeout"]


def test_ctrl_c_while_waiting_leaves_the_ensemble_running(cluster):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDBURST_")}
    waiting = subprocess.Popen([sys.executable, "-m", "cloudburst.cli", "submit", str(NET3), scenario_file(cluster),
                                "--name", "interrupted", "--wait"], env={**env, **cluster["env"]},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    queued = wait_until("the members enqueued", lambda: cluster["redis"].llen("rq:queue:cloudburst"), 60)
    time.sleep(1)  # in its wait loop
    waiting.send_signal(signal.SIGINT)
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 130
    assert "left running; follow it with: cloudburst status interrupted" in stderr
    assert cluster["redis"].llen("rq:queue:cloudburst") == queued  # nothing was cancelled
    workers = start_workers(cluster)
    try:
        wait_until("every member finished", lambda: cli(cluster, "status", "interrupted").stdout, 120,
                   done=lambda text: "finished 12  failed 0" in text)
    finally:
        stop(workers)
