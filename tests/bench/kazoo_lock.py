#!/usr/bin/python3
"""A cron job's lock with kazoo (Debian's python3-kazoo), for coordd-bench.

Usage: kazoo_lock.py HOSTS NAME

Connects to ZooKeeper, takes kazoo's Lock recipe on /bench-kazoo/NAME, runs
`true` while holding it, releases it and closes the session: what
`coordctl lock NAME -- true` and `etcdctl lock NAME true` do.
"""
import subprocess
import sys

from kazoo.client import KazooClient


def main():
    hosts, name = sys.argv[1], sys.argv[2]
    client = KazooClient(hosts=hosts)
    client.start(timeout=10)
    try:
        with client.Lock("/bench-kazoo/" + name):
            subprocess.run(["true"], check=True)
    finally:
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
