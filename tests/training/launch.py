"""Run a module under `accelerate launch` with several CPU processes, as a GPU cluster would run it
with one process per GPU (accelerate's torchrun-style `--multi_gpu` launcher; with no GPU each rank
runs on the CPU over gloo, where `--cpu` would start a single process)."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on now: the rendezvous port of one launch (the default 29500
    would collide with another launch running at the same time)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_group(cmd: list[str], timeout: float, env: dict, cwd=REPO) -> subprocess.CompletedProcess:
    """subprocess.run in a session of its own: on a timeout (or an interrupted test) the whole
    process group goes, so no launcher worker is left behind sleeping on its rendezvous."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                          start_new_session=True) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def accelerate_launch(module: str, args: list[str], processes: int = 2,
                      timeout: float = 300) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes N -m MODULE ARGS` from the repository root,
    one thread a process, no GPU visible; returns the finished process (stdout, stderr: text)."""
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", module, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return run_group(cmd, timeout, env)
