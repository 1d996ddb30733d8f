"""A small agent-like Python task: a thread pool hashing files while a process pool counts
words, results stored in sqlite. Its syscalls depend on timing (lock contention, which worker
finishes first), which is what repeated recordings have to cover."""

import hashlib
import multiprocessing
import os
import sqlite3
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def words(text):
    return len(text.split())


def main():
    work = tempfile.mkdtemp(prefix="workload-")
    paths = []
    for i in range(16):
        path = os.path.join(work, f"f{i}.txt")
        with open(path, "w") as f:
            f.write(("lorem ipsum dolor sit amet " * (50 + i)) + "\n")
        paths.append(path)

    lock = threading.Lock()
    digests = {}

    def worker(path):
        d = digest(path)
        with lock:
            digests[path] = d

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(worker, paths))

    texts = [open(p).read() for p in paths]
    with multiprocessing.Pool(processes=3) as pool:
        counts = pool.map(words, texts)

    db = sqlite3.connect(os.path.join(work, "results.db"))
    db.execute("create table results (path text, digest text, words integer)")
    db.executemany(
        "insert into results values (?, ?, ?)",
        [(p, digests[p], c) for p, c in zip(paths, counts)],
    )
    db.commit()
    (total,) = db.execute("select sum(words) from results").fetchone()
    db.close()
    for p in paths:
        os.remove(p)
    os.remove(os.path.join(work, "results.db"))
    os.rmdir(work)
    print(f"{len(paths)} files, {total} words")


if __name__ == "__main__":
    main()
