"""Where a hung worker was: the faulthandler dump a local worker writes on STACK_SIGNAL, read back to its frames."""

import os
import subprocess
import sys
import textwrap
import time

from hopper.mop_scheduler.backends.local import STACK_SIGNAL, innermost_frames

SPINNER = textwrap.dedent("""
    import faulthandler, signal, sys, threading, time
    faulthandler.register(signal.{signal}, file=open(sys.argv[1], "w"), all_threads=True)
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # a second thread in the dump

    def spin_in_fit():
        print("spinning", flush=True)
        while True:
            pass

    def run():  # runner.py is what the backend looks for; here the script's own name stands in for it
        spin_in_fit()

    run()
""")


def test_innermost_frames_of_a_real_dump(tmp_path) -> None:
    script = tmp_path / "runner.py"
    script.write_text(SPINNER.format(signal=STACK_SIGNAL.name))
    stacks = tmp_path / "stacks.txt"
    proc = subprocess.Popen([sys.executable, str(script), str(stacks)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "spinning"
        os.kill(proc.pid, STACK_SIGNAL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "spin_in_fit" not in stacks.read_text():
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    dump = stacks.read_text()
    assert dump.count("(most recent call first)") == 2, dump
    where = innermost_frames(dump)  # the busy thread, not the sleeping one; innermost first (the loop's two lines)
    assert where.startswith("spin_in_fit (runner.py:") and where.endswith(" < run (runner.py:12) < <module> (runner.py:14)"), \
        where


def test_innermost_frames_of_nothing() -> None:
    assert innermost_frames("") == ""
    assert innermost_frames("Fatal Python error: nothing useful\n") == ""
