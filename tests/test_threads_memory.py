"""A model's first loop sets glibc's malloc to keep freed blocks for the next step
(lstmfast._memory): a step's large arrays then cost no page faults the next time, and a user's
own choice (LSTMFAST_KEEP_FREED_MEMORY=0, glibc's MALLOC_* settings) is left as it is."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc only")

# One predict (the first model loop), then steps that each hold four 18 MB arrays at once and
# free them: 72 MB free at the heap's top, above glibc's own trim threshold (twice its mmap
# threshold, which rises to the largest block freed, 18 MB), so without the setting every
# step takes its pages from the kernel again.
PROGRAM = r"""
import json, resource, numpy as np, lstmfast
from lstmfast import _memory
model = lstmfast.Sequential([lstmfast.Input((3, 2)), lstmfast.layers.LSTM(4)])
model.predict(np.zeros((2, 3, 2), np.float32), verbose=0)

def step():
    held = [np.ones((768, 6000), np.float32) for _ in range(4)]
    del held

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(json.dumps({"applied": _memory.applied, "faults": faults}))
"""


def run(**env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("LSTMFAST_KEEP_FREED_MEMORY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=environment, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_first_model_loop_keeps_freed_memory_for_the_next_step():
    kept, left = run(), run(LSTMFAST_KEEP_FREED_MEMORY="0")
    assert kept["applied"] and not left["applied"]
    # 72 MB are 18,432 pages: every step faulted on them (or their huge pages) without the
    # setting, on none with it.
    assert kept["faults"] < 20, kept
    assert left["faults"] > 10 * max(kept["faults"], 1), (kept, left)


def test_a_users_own_malloc_setting_is_left_alone():
    assert not run(MALLOC_TRIM_THRESHOLD_="1000000")["applied"]
    assert not run(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000")["applied"]
