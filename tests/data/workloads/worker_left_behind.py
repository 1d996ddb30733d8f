"""Starts a daemonic multiprocessing worker that sleeps, then exits. At exit, multiprocessing
stops daemonic workers with SIGTERM (os.kill): under a profile that denies kill, the worker is
never stopped and outlives this process. `verify` must end it and say so."""

import multiprocessing
import sys
import time


def work(seconds):
    time.sleep(seconds)


if __name__ == "__main__":
    worker = multiprocessing.Process(target=work, args=(float(sys.argv[1]),), daemon=True)
    worker.start()
    print("worker", worker.pid, flush=True)
