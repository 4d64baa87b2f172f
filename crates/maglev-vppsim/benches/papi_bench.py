"""The Rust client's benchmark sequence, through vpp_papi.

usage: papi_bench.py APIDIR SOCKET N
Prints JSON: sequential control_ping round trips per second, and pipelined
control_pings per second (vpp_papi's async mode: requests sent without
waiting, replies counted by the reader thread).
"""
import json
import sys
import threading
import time

from vpp_papi import VPPApiClient

apidir, sock, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

vpp = VPPApiClient(apidir=apidir, use_socket=True, server_address=sock)
vpp.connect("papi-bench-seq")
for _ in range(100):  # warm up
    vpp.api.control_ping()
t = time.perf_counter()
for _ in range(n):
    vpp.api.control_ping()
seq = n / (time.perf_counter() - t)
vpp.disconnect()

done = threading.Event()
count = [0]


def on_reply(name, msg):
    if name == "control_ping_reply":
        count[0] += 1
        if count[0] == n:
            done.set()


vpp = VPPApiClient(apidir=apidir, use_socket=True, server_address=sock)
vpp.register_event_callback(on_reply)
vpp.connect("papi-bench-async", do_async=True)
t = time.perf_counter()
for _ in range(n):
    vpp.api.control_ping()
done.wait(120)
pipelined = count[0] / (time.perf_counter() - t)
vpp.disconnect()
print(json.dumps({"sequential_rt_per_s": seq, "pipelined_msgs_per_s": pipelined, "n": n,
                  "pipelined_complete": count[0] == n}))
