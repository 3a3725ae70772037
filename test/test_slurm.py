"""The Slurm backend (cmd.sh, utils/run_slurm.sh, utils/slurm_dist_launch.sh) on a Slurm
cluster on loopback that the tests start and stop themselves: one machine, two slurmd
(node names: this host's name and ``localhost``), so that two-node jobs run too.

Tests marked ``slurm`` need Debian's ``slurm-wlm`` and ``munge`` (``make test-slurm``
installs them) and are skipped unless ``SMILE_SLURM_TESTS=1``. The cluster lives in a
temporary folder: its own munge key and socket, its own ports, ``SLURM_CONF`` pointing
at its slurm.conf, so it does not touch a Slurm or munge already set up on the machine.
"""

import getpass
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from helpers_model import toy_config
from test_recipe import RECIPE, recipe_copy, recipe_env, results_rows

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_conf(root: Path, nodes: List[str], cpus: int) -> str:
    """A cluster on 127.0.0.1 (one slurmd per node name, each on its own port): no cgroups,
    no accounting database; finished jobs are written to jobcomp.txt (what ``sacct`` would show)."""
    node_lines = "".join(f"NodeName={n} NodeAddr=127.0.0.1 Port={_free_port()} CPUs={cpus} RealMemory=2000\n"
                         for n in nodes)
    return f"""\
ClusterName=smiletest
SlurmctldHost={nodes[0]}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmUser={getpass.getuser()}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.txt
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=600
{node_lines}PartitionName=smile Nodes={",".join(nodes)} Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """munged, slurmctld and one slurmd per node name in the foreground under ``root``, at
    the lowest CPU priority. The node names are this host's name and ``localhost``: both
    resolve to this machine, so a job of two "nodes" can run torch.distributed across them."""

    def __init__(self, root: Path, cpus: int = 2):
        self.root = root
        self.nodes = list(dict.fromkeys([socket.gethostname().split(".")[0], "localhost"]))
        self.procs: Dict[str, subprocess.Popen] = {}
        for d in ("munge", "state", "log", *(f"spool/{n}" for n in self.nodes)):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "munge").chmod(0o755)  # the socket must be reachable; the key is 0600
        self.conf = root / "slurm.conf"
        self.conf.write_text(_slurm_conf(root, self.nodes, cpus))
        self.env = {"SLURM_CONF": str(self.conf)}
        self.jobcomp = root / "jobcomp.txt"

    def _start(self, name: str, cmd: List[str]) -> None:
        out = (self.root / "log" / f"{name}.out").open("w")
        self.procs[name] = subprocess.Popen(["nice", "-n", "19", *cmd], stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env})

    def start(self, timeout: float = 60.0) -> None:
        m = self.root / "munge"
        subprocess.run(["mungekey", "--create", "--keyfile", str(m / "munge.key")], check=True)
        self._start("munged", ["munged", "--foreground", "--force", f"--socket={m}/munge.sock",
                               f"--key-file={m}/munge.key", f"--log-file={m}/munged.log",
                               f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed"])
        self._start("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
        for node in self.nodes:
            self._start(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", str(self.conf)])
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited:\n{self.logs()}")
            state = self.run(["sinfo", "--noheader", "--format=%T"], check=False).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the node is not idle after {timeout} s (sinfo: {state!r}):\n{self.logs()}")

    def run(self, cmd: List[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, check=check, env={**os.environ, **self.env})

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.root / "log").glob("*"))
                         if p.is_file())

    def completed_jobs(self) -> List[Dict[str, str]]:
        """Finished jobs as the controller recorded them (one dict per job or array task)."""
        if not self.jobcomp.exists():
            return []
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in self.jobcomp.read_text().splitlines()]

    def stop(self) -> None:
        """``scontrol shutdown`` stops slurmctld and every slurmd; then munged. Whatever does
        not stop within 20 s is killed."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run(["scontrol", "shutdown"], check=False)
        for name in sorted(self.procs, key=lambda n: n == "munged"):  # munged last
            proc = self.procs[name]
            if name == "munged":
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory, request) -> LocalSlurm:
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.fail(f"not installed: {missing}; make test-slurm installs slurm-wlm and munge")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    request.addfinalizer(cluster.stop)  # also when start() fails half-way
    cluster.start()
    return cluster


def run_slurm(cluster: LocalSlurm, cwd: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **cluster.env, "SMILE_SLURM_POLL": "1", **extra_env}
    return subprocess.run([str(RECIPE / "utils" / "run_slurm.sh"), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slurm
def test_run_slurm_job_array_logs_and_a_failing_job(slurm_cluster: LocalSlurm, tmp_path: Path):
    proc = run_slurm(slurm_cluster, tmp_path, "--max_jobs_run", "2", "JOB=1:3", "log/echo.JOB.log",
                     "bash", "-c", 'echo "job JOB: $1"; exit $((JOB == 2))', "_", "two  spaces")
    assert proc.returncode != 0
    assert "1 of 3 jobs failed" in proc.stderr and "see log/echo.2.log" in proc.stderr, proc.stderr
    for j in (1, 2, 3):
        text = (tmp_path / "log" / f"echo.{j}.log").read_text()
        lines = text.splitlines()
        assert lines[0] == f'# bash -c echo "job {j}: $1"; exit $(({j} == 2)) _ two  spaces'
        assert re.match(rf"# Started at .* \(slurm job \d+_{j}, id \d+\)$", lines[1]), lines[1]
        assert f"job {j}: two  spaces" in lines  # JOB replaced, arguments kept whole
        assert lines[-1].startswith(f"# Ended (code {int(j == 2)}) at "), text
    # one array, throttled, and it went through the controller
    assert "--array=1-3%2" in (tmp_path / "log" / "q" / "echo.sh").read_text()
    names = [job.get("Name") for job in slurm_cluster.completed_jobs()]
    assert names.count("echo") == 3, slurm_cluster.jobcomp.read_text()

    # a single job without JOB=, in the current directory and environment
    # with the settings of cmd.sh
    proc = run_slurm(slurm_cluster, tmp_path, "log/one.log", "bash", "-c", 'pwd; echo "v=$SMILE_TEST_VALUE"',
                     SMILE_TEST_VALUE="from the submitting shell", SMILE_SLURM_PARTITION="smile",
                     SMILE_SLURM_OPTS="--time=5  --comment=smile*test")
    assert proc.returncode == 0, proc.stderr
    assert "--partition=smile --time=5 --comment=smile\\*test" in (tmp_path / "log" / "q" / "one.sh").read_text()
    one = [job for job in slurm_cluster.completed_jobs() if job.get("Name") == "one"]
    assert len(one) == 1 and one[0]["TimeLimit"] != "UNLIMITED", one
    lines = (tmp_path / "log" / "one.log").read_text().splitlines()
    assert str(tmp_path) in lines and "v=from the submitting shell" in lines, lines
    assert lines[-1].startswith("# Ended (code 0)")


@pytest.mark.slurm
def test_run_slurm_task_killed_by_slurm(slurm_cluster: LocalSlurm, tmp_path: Path):
    """A task that ends without an exit status (cancelled) fails the run and points at Slurm's output."""
    # the index is called IDX here: JOB would also be replaced inside $SLURM_JOB_ID
    proc = run_slurm(slurm_cluster, tmp_path, "IDX=1:1", "log/cancel.IDX.log",
                     "bash", "-c", 'scancel "$SLURM_JOB_ID"; sleep 60')
    assert proc.returncode != 0
    assert "see log/cancel.1.log" in proc.stderr and "ended without an exit status" in proc.stderr, proc.stderr
    out = re.search(r"see (\S+\.out)", proc.stderr).group(1)
    assert "CANCELLED" in Path(out).read_text()


@pytest.mark.slurm
def test_recipe_stages_1_to_13_on_slurm_ddp_on_one_and_two_nodes(slurm_cluster: LocalSlurm, tiny_corpus: Path,
                                                                  tmp_path: Path):
    work = recipe_copy(tmp_path / "avsr1")
    config = tmp_path / "train_tiny.yaml"
    config.write_text(yaml.safe_dump(toy_config("smile", video_frontend_conf={"downsample": 2, "crop_size": 40})))
    env = {**recipe_env(), **slurm_cluster.env, "SMILE_CMD_BACKEND": "slurm", "SMILE_SLURM_POLL": "1"}
    common = ["--asr_config", str(config), "--nbpe", "100",
              "--local_data_opts", f"--corpus_dir {tiny_corpus} --corpus_size tiny",
              "--asr_args", "--max_epoch 1 --batch_size 8 --use_tensorboard false --use_matplotlib false",
              "--inference_args", "--beam_size 2 --maxlenratio 0.5"]

    def run(*args: str) -> None:
        proc = subprocess.run(["./run.sh", *args, *common], cwd=work, capture_output=True, text=True, env=env,
                              timeout=1800)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:] + slurm_cluster.logs()

    run("--stage", "1", "--stop_stage", "13", "--cpu_procs_per_node", "2")  # stage 11: 2 srun tasks, gloo DDP

    # sclite's WER table
    tag = "decode_beam_size2_maxlenratio0.5_asr_model_valid.acc.ave"
    wer_rows = results_rows(work / "RESULTS.md", "WER")
    assert wer_rows and wer_rows[0].startswith(f"|{tag}/test|8|"), wer_rows

    # every job of stages 10-12 ran as a Slurm job: the id in its log, a record at the controller
    exp = work / "exp" / "asr_train_tiny_raw_bpe100_max_epoch1_batch_size8_use_tensorboardfalse_use_matplotlibfalse"
    logs = [*sorted((work / "exp" / "asr_stats_raw_bpe100" / "logdir").glob("stats.*.log")), exp / "train.log",
            *sorted((exp / tag / "test" / "logdir").glob("asr_inference.*.log"))]
    assert len(logs) == 5, logs
    job_ids = set()
    for log in logs:
        head = log.read_text().splitlines()[:2]
        m = re.search(r"\(slurm job (\d+)_\d+, id (\d+)\)$", head[1])
        assert m, (log, head)
        job_ids.add(m.group(2))
        assert log.read_text().splitlines()[-1].startswith("# Ended (code 0)")
    done = {job["JobId"]: job for job in slurm_cluster.completed_jobs()}
    for jid in job_ids:
        assert done[jid]["JobState"] == "COMPLETED", done.get(jid)
    assert {done[j]["Name"] for j in job_ids} == {"stats", "train", "asr_inference"}

    # stage 11: one job with two srun tasks that formed one gloo process group
    train_log = (exp / "train.log").read_text()
    assert re.search(r"2 tasks on \S+, master \S+:\d+", train_log), train_log[:3000]
    assert "--dist_rank 0" in train_log and "--dist_rank 1" in train_log
    assert re.search(r"\[\S+:0/2\] .* 1epoch results: \[train\]", train_log), train_log[-3000:]
    assert (exp / "valid.acc.ave.pth").is_file()

    # stage 11 on two nodes, one process each
    if len(slurm_cluster.nodes) < 2:
        pytest.skip("this host is called localhost: no second node name on loopback")
    run("--stage", "11", "--stop_stage", "11", "--num_nodes", "2", "--asr_tag", "two_nodes")
    train_log = (work / "exp" / "asr_two_nodes" / "train.log").read_text()
    nodelist = ",".join(sorted(slurm_cluster.nodes))  # Slurm lists the nodes sorted
    first = sorted(slurm_cluster.nodes)[0]
    assert re.search(rf"2 tasks on {nodelist}, master {first}:\d+", train_log), train_log[:3000]
    assert re.search(r"\[\S+:0/2\] .* 1epoch results: \[train\]", train_log), train_log[-3000:]
    assert (work / "exp" / "asr_two_nodes" / "valid.acc.ave.pth").is_file()


def test_srun_training_needs_the_slurm_backend(tmp_path: Path):
    """More than one training process, asked for with the local backend, stops before any stage."""
    work = recipe_copy(tmp_path / "avsr1")
    env = {**recipe_env(), "SMILE_CMD_BACKEND": "local"}
    for opts in (["--cpu_procs_per_node", "2"], ["--ngpu", "1", "--num_nodes", "2"]):
        proc = subprocess.run(["./run.sh", "--stage", "11", "--stop_stage", "11", *opts], cwd=work,
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "SMILE_CMD_BACKEND=slurm" in proc.stdout + proc.stderr
    assert not (work / "exp").exists()
    proc = subprocess.run(["./run.sh", "--ngpu", "2", "--cpu_procs_per_node", "2"], cwd=work,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "is for CPU training" in proc.stdout + proc.stderr
    proc = subprocess.run(["./run.sh"], cwd=work, capture_output=True, text=True,
                          env={**env, "SMILE_CMD_BACKEND": "pbs"})
    assert proc.returncode != 0 and "unknown cmd_backend pbs" in proc.stderr


# Stand-ins for the Slurm commands: a two-node allocation "gpu-node[01-02]", whose node
# names ESPnet's own master-address guess gets wrong.
FAKE_SLURM = {
    "sbatch": """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_DIR/sbatch.args"
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_JOB_ID=7 SLURM_JOB_ID=7 SLURM_JOB_NODELIST='gpu-node[01-02]' \\
  SLURM_NTASKS=2 SLURM_CPUS_PER_TASK=2 bash "${@: -1}" > /dev/null 2>&1
echo 7
""",
    "squeue": "#!/usr/bin/env bash\n",
    # one host per write, the second one late, as a long host list arrives: a reader that
    # stops after the first line would kill it with SIGPIPE
    "scontrol": """#!/usr/bin/env bash
[ "$1 $2 $3" = "show hostnames gpu-node[01-02]" ] || exit 1
echo gpu-node01; sleep 0.3; echo gpu-node02
""",
    "srun": """#!/usr/bin/env bash
while [[ "$1" == --* ]]; do shift; done
for i in 0 1; do
  SLURM_PROCID=$i SLURM_NODEID=$i SLURM_LOCALID=0 SLURM_STEP_NUM_NODES=2 SLURM_NTASKS=2 \\
    SLURM_STEP_NODELIST='gpu-node[01-02]' "$@" || exit 1
done
""",
    # in place of python: one JSON line per task with its arguments and srun's variables
    "record_python": """#!/usr/bin/env python3
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith("SLURM_")}
with open(os.path.join(os.environ["FAKE_DIR"], "tasks.jsonl"), "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "env": env}) + "\\n")
""",
}


def test_multi_node_gpu_training_reaches_espnet_with_ranks_and_master(tmp_path: Path, monkeypatch):
    """``--ngpu 2 --num_nodes 2``: avsr.sh → run_slurm.sh → slurm_dist_launch.sh → srun, with
    the Slurm commands faked; ESPnet's own code then resolves what every spawned worker gets."""
    import json

    from espnet2.train.distributed_utils import (DistributedOption, get_master_addr, get_node_rank,
                                                 get_num_nodes, resolve_distributed_mode)
    from espnet2_smile.tasks.avsr import AVSRTask

    fake = tmp_path / "bin"
    fake.mkdir()
    for name, text in FAKE_SLURM.items():
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    work = recipe_copy(tmp_path / "avsr1")
    env = {**recipe_env(), "SMILE_CMD_BACKEND": "slurm", "FAKE_DIR": str(fake), "SMILE_SLURM_POLL": "1",
           "PATH": f"{fake}:{os.environ['PATH']}"}
    proc = subprocess.run(["./run.sh", "--stage", "11", "--stop_stage", "11", "--ngpu", "2", "--num_nodes", "2",
                           "--python", str(fake / "record_python")],
                          cwd=work, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sbatch = (fake / "sbatch.args").read_text().splitlines()
    for opt in ("--nodes=2", "--ntasks-per-node=1", "--gres=gpu:2", "--cpus-per-task=2", "--job-name=train"):
        assert opt in sbatch, sbatch
    tasks = [json.loads(line) for line in (fake / "tasks.jsonl").read_text().splitlines()]
    assert len(tasks) == 2

    parser = AVSRTask.get_parser()
    monkeypatch.chdir(work)  # --config conf/train.yaml
    for node, task in enumerate(tasks):
        assert task["argv"][:2] == ["-m", "espnet2_smile.bin.avsr_train"]
        args = parser.parse_args(task["argv"][2:])
        for k, v in task["env"].items():
            monkeypatch.setenv(k, v)
        assert get_master_addr(None, "slurm") == "gpu"  # what ESPnet would guess by itself
        resolve_distributed_mode(args)
        assert args.distributed and args.multiprocessing_distributed and args.ngpu == 2
        assert get_num_nodes(args.dist_world_size, args.dist_launcher) == 2
        assert get_node_rank(args.dist_rank, args.dist_launcher) == node
        for local_rank in range(args.ngpu):  # the workers AbsTask.main spawns on this node
            option = DistributedOption(distributed=True, dist_backend=args.dist_backend,
                                       dist_init_method=args.dist_init_method, dist_world_size=2 * 2,
                                       dist_rank=2 * node + local_rank, local_rank=local_rank, ngpu=1,
                                       dist_master_addr=args.dist_master_addr,
                                       dist_master_port=args.dist_master_port, dist_launcher=args.dist_launcher)
            option.init_options()
            assert option.dist_init_method == f"tcp://gpu-node01:{args.dist_master_port}"
            assert (option.dist_rank, option.dist_world_size) == (2 * node + local_rank, 4)
