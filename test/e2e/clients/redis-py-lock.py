"""redis-py's Lock against two raftlock nodes: acquire, refuse a rival, extend (add and replace),
reacquire, release, and the rival then acquires. Prints one JSON object of observations for the e2e test."""
import json
import sys

import redis
from redis.lock import Lock

first_port, second_port = int(sys.argv[1]), int(sys.argv[2])
mine = redis.Redis(host="127.0.0.1", port=first_port)
theirs = redis.Redis(host="127.0.0.1", port=second_port)
seen = {}

lock = Lock(mine, "py-lock", timeout=5, blocking=False)
rival = Lock(theirs, "py-lock", timeout=5, blocking=False)
seen["acquired"] = lock.acquire()
seen["rival_refused"] = not rival.acquire()
seen["owned"] = lock.owned()
seen["extended_add"] = lock.extend(3)  # adds 3 s to the time left
seen["pttl_after_add"] = mine.pttl("py-lock")
seen["extended_replace"] = lock.extend(4, replace_ttl=True)
seen["pttl_after_replace"] = mine.pttl("py-lock")
seen["reacquired"] = lock.reacquire()
lock.release()
seen["released_locked"] = lock.locked()
seen["rival_acquired"] = rival.acquire()
rival.release()
print(json.dumps(seen))
