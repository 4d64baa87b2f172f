"""Encode messages with VPP's own Python client (vpp_papi), offline.

usage: encode.py APIDIR CASES.json
Each case is {"name", "args", "rust"}: the message name, its fields as
vpp_papi takes them, and the hex the Rust encoder produced. Prints a JSON
list of {"name", "papi", "papi_decodes_rust"}: vpp_papi's own bytes for
the same fields, and whether vpp_papi decodes the Rust bytes to their end.
"""
import json
import sys

from vpp_papi import VPPApiClient

client = VPPApiClient(apidir=sys.argv[1])
with open(sys.argv[2]) as f:
    cases = json.load(f)
out = []
for case in cases:
    msg = client.messages[case["name"]]
    packed = msg.pack(case["args"])
    rust = bytes.fromhex(case["rust"])
    try:
        _, consumed = msg.unpack(rust)
        decodes = consumed == len(rust)
    except Exception as e:  # report, do not crash: the Rust side asserts
        decodes = f"{type(e).__name__}: {e}"
    out.append({"name": case["name"], "papi": packed.hex(), "papi_decodes_rust": decodes})
print(json.dumps(out))
