"""Waits for a `tally serve` started with `--listen 127.0.0.1:0 --log-format json`.

Usage: wait_ready.py LOG PID OUT. Reads the bound address from the service's "listening"
log line, waits until /readyz answers 200 and writes the base URL to OUT. Fails with the
log when the service exits first or is not ready within two minutes.
"""

import json
import sys
import time
import urllib.request

TIMEOUT_SECONDS = 120


def running(pid):
    """Whether the service runs: an exited one is gone, or a zombie until reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listening_url(log):
    """The service's base URL once it has logged its address, else None."""
    with open(log, errors="replace") as lines:
        for line in lines:
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if fields.get("message") == "listening":
                return "http://" + fields["address"]
    return None


def ready(url):
    try:
        return urllib.request.urlopen(url + "/readyz", timeout=5).status == 200
    except OSError:
        return False


def main(log, pid, out):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not running(pid):
            sys.exit("the service exited before it was ready; its log:\n" + open(log).read())
        url = listening_url(log)
        if url is not None and ready(url):
            with open(out, "w") as file:
                file.write(url)
            return
        time.sleep(0.2)
    sys.exit(f"the service was not ready in {TIMEOUT_SECONDS} s; its log:\n" + open(log).read())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
