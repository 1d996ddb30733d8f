"""An agent-like task, as a coding agent runs one in its container: clone a repository, edit
files from several threads, run a Node program (a local TCP server and a child process), commit
the change. Everything happens in a fresh temporary directory that is removed at the end, so
that the container can be started again and do the same.

Usage: agent_task.py [NODE_SCRIPT]   (default: tcp_and_child.js next to this file)
"""

import concurrent.futures
import hashlib
import os
import subprocess
import sys
import tempfile

GIT = ["git", "-c", "user.name=agent", "-c", "user.email=agent@example.invalid",
       "-c", "init.defaultBranch=main", "-c", "safe.directory=*"]


def git(cwd, *args):
    return subprocess.run(GIT + list(args), cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def make_upstream(root):
    upstream = os.path.join(root, "upstream")
    os.mkdir(upstream)
    git(upstream, "init", "-q")
    for i in range(8):
        with open(os.path.join(upstream, f"module_{i}.py"), "w") as f:
            f.write(f"def value_{i}():\n    return {i}\n")
    git(upstream, "add", ".")
    git(upstream, "commit", "-q", "-m", "initial")
    return upstream


def edit(path):
    """One file edited by one thread: what an agent's parallel tool calls do."""
    with open(path) as f:
        text = f.read()
    text = text.replace("return", "return 2 *") + "# edited by the agent\n"
    with open(path, "w") as f:
        f.write(text)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    node_script = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "tcp_and_child.js")
    with tempfile.TemporaryDirectory(prefix="agent-task-") as root:
        upstream = make_upstream(root)
        work = os.path.join(root, "work")
        git(root, "clone", "-q", upstream, work)
        files = sorted(os.path.join(work, n) for n in os.listdir(work) if n.endswith(".py"))
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            digests = list(pool.map(edit, files))
        node = subprocess.run(["node", node_script], check=True, capture_output=True, text=True)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "agent: double every value")
        log = git(work, "log", "--oneline")
        stat = git(work, "diff", "--stat", "HEAD~1")
        assert len(log.splitlines()) == 2, log
        assert "8 files changed" in stat, stat
        print("agent task done:", len(digests), "files edited;", node.stdout.strip())


if __name__ == "__main__":
    main()
