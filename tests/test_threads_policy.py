"""The thread team on shared cores: the adaptive policy's rule, its Python switches, and the team
shrinking while busy processes contend for the cores and growing back once they stop."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import lstmfast
from lstmfast import ops
from lstmfast._core import core


def test_contended_cores_halve_the_team():
    assert core.next_team_size(8, 8, 0.5, 0.0) == 4
    assert core.next_team_size(4, 8, 0.2, 3.0) == 2   # contention wins over idle readings
    assert core.next_team_size(2, 2, 0.11, -1.0) == 1
    assert core.next_team_size(1, 2, 0.9, 0.0) == 1   # never below one thread


def test_idle_cores_grow_the_team_back_to_the_set_count():
    assert core.next_team_size(1, 2, 0.0, 1.0) == 2
    assert core.next_team_size(1, 8, 0.0, 2.6) == 4   # one more per idle core, rounded
    assert core.next_team_size(2, 8, 0.0, 0.5) == 3
    assert core.next_team_size(4, 8, 0.0, 16.0) == 8  # never above the set count


def test_a_quiet_or_unknown_machine_keeps_the_team():
    assert core.next_team_size(2, 2, 0.0, 0.0) == 2
    assert core.next_team_size(2, 2, 0.05, -1.0) == 2
    assert core.next_team_size(1, 2, 0.05, 0.3) == 1   # less than half a core idle
    assert core.next_team_size(1, 2, 0.0, -1.0) == 1   # idle cores not known


def test_policy_switch_and_its_errors(restore_threads):
    lstmfast.set_thread_policy("fixed")
    assert lstmfast.get_thread_policy() == "fixed"
    lstmfast.set_thread_policy("adaptive")
    assert lstmfast.get_thread_policy() == "adaptive"
    with pytest.raises(ValueError, match="Unknown thread policy 'spin'.*adaptive, fixed"):
        lstmfast.set_thread_policy("spin")
    lstmfast.set_num_threads(3)
    assert lstmfast.get_num_threads() == 3 and lstmfast.threads_in_use() == 3


@pytest.mark.parametrize("value, want, warns", [("fixed", "fixed", False), ("", "adaptive", False),
                                                ("ADAPTIVE", "adaptive", False), ("nope", "adaptive", True)])
def test_environment_variable_sets_the_policy_at_import(value, want, warns):
    env = dict(os.environ, LSTMFAST_THREAD_POLICY=value)
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import lstmfast; print(lstmfast.get_thread_policy())")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == want
    assert ("LSTMFAST_THREAD_POLICY='nope' is not one of adaptive, fixed" in proc.stderr) == warns


def _scheduler_statistics() -> bool:
    try:
        with open(f"/proc/self/task/{os.getpid()}/schedstat") as f:
            return len(f.read().split()) >= 2
    except OSError:
        return False


def _run_kernels_until(condition, seconds):
    """Runs small LSTM forwards (many parallel regions) until condition() or the time is up."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 20, 8)).astype(np.float32)
    W = rng.standard_normal((8, 128)).astype(np.float32) * 0.1
    U = rng.standard_normal((32, 128)).astype(np.float32) * 0.1
    b = np.zeros(128, np.float32)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ops.lstm_forward(x, W, U, b)
        if condition():
            return True
    return False


@pytest.mark.skipif(not _scheduler_statistics(), reason="no scheduler statistics in /proc on this system")
def test_team_shrinks_beside_busy_processes_and_grows_back(restore_threads):
    n = len(os.sched_getaffinity(0))
    if n < 2:
        pytest.skip("one CPU: no team to shrink")
    lstmfast.set_num_threads(n)
    lstmfast.set_thread_policy("adaptive")
    _run_kernels_until(lambda: False, 0.3)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        assert _run_kernels_until(lambda: lstmfast.threads_in_use() < n, 20), \
            f"the team stayed at {n} threads beside {n} busy processes: {core.thread_policy_readings()}"
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    if not _run_kernels_until(lambda: lstmfast.threads_in_use() == n, 20):
        contention, idle = core.thread_policy_readings()
        if 0 <= idle < 0.5:
            pytest.skip(f"other processes keep this machine's cores busy ({idle:.2f} idle): no core to grow into")
        pytest.fail(f"the team stayed at {lstmfast.threads_in_use()} threads on idle cores: {(contention, idle)}")


def test_fixed_policy_keeps_the_team_beside_busy_processes(restore_threads):
    n = len(os.sched_getaffinity(0))
    lstmfast.set_num_threads(n)
    lstmfast.set_thread_policy("fixed")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        assert not _run_kernels_until(lambda: lstmfast.threads_in_use() != n, 1.0)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
