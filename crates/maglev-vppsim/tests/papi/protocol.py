"""Drive the simulator with VPP's own Python client (vpp_papi), as one
would drive a real VPP, and check it answers like one.

usage: protocol.py APIDIR SOCKET
Prints one JSON object with what was seen; exits non-zero on a mismatch.
"""
import json
import sys

from vpp_papi import VPPApiClient

apidir, sock = sys.argv[1], sys.argv[2]
seen = {}


def check(what, cond, detail=""):
    if not cond:
        print(f"MISMATCH: {what} {detail}", file=sys.stderr)
        sys.exit(1)


vpp = VPPApiClient(apidir=apidir, use_socket=True, server_address=sock)
rv = vpp.connect("papi-crosscheck")
check("connect", rv == 0, rv)

v = vpp.api.show_version()
check("show_version retval", v.retval == 0)
seen["program"] = v.program
seen["version"] = v.version

ping = vpp.api.control_ping()
seen["pid"] = ping.vpe_pid

r = vpp.api.lb_conf(ip4_src_address="192.0.2.1", ip6_src_address="2001:db8::1",
                    sticky_buckets_per_core=65536, flow_timeout=30)
check("lb_conf", r.retval == 0, r)
c = vpp.api.lb_conf_get()
check("lb_conf_get", c.retval == 0 and str(c.ip4_src_address) == "192.0.2.1"
      and str(c.ip6_src_address) == "2001:db8::1"
      and c.sticky_buckets_per_core == 65536 and c.flow_timeout == 30, c)
r = vpp.api.lb_conf(ip4_src_address="192.0.2.1", ip6_src_address="2001:db8::1",
                    sticky_buckets_per_core=1000)
check("lb_conf non power of two", r.retval == -70, r)

# The upstream test: VIP 192.0.2.0/24, four ASes, weights changed.
vip = dict(pfx="192.0.2.0/24", protocol=6, port=80)
r = vpp.api.lb_add_del_vip_v2(encap=0, new_flows_table_length=1024, **vip)
check("vip add", r.retval == 0, r)
r = vpp.api.lb_add_del_vip_v2(encap=0, new_flows_table_length=1024, **vip)
check("vip add again", r.retval == -81, r)
for i in range(1, 5):
    r = vpp.api.lb_add_del_as_v2(as_address=f"10.0.0.{i}", **vip)
    check("as add", r.retval == 0, r)


def buckets():
    d = vpp.api.lb_as_v2_dump(pfx="::/0", protocol=0, port=0)
    return [a.num_buckets for a in d]


seen["buckets_initial"] = buckets()
r = vpp.api.lb_as_set_weight(as_address="10.0.0.1", weight=50, **vip)
check("set weight", r.retval == 0, r)
seen["buckets_50"] = buckets()
r = vpp.api.lb_as_set_weight(as_address="10.0.0.2", weight=0, is_flush=True, **vip)
seen["buckets_0"] = buckets()

r = vpp.api.lb_as_set_weight(as_address="10.0.0.9", weight=1, **vip)
check("set weight unknown AS", r.retval == -6, r)
r = vpp.api.lb_add_del_as_v2(as_address="2001:db8::5", **vip)
check("AS family", r.retval == -97, r)
r = vpp.api.lb_add_del_as(as_address="10.0.0.4", is_del=True, is_flush=True, **vip)
check("as del", r.retval == 0, r)
d = vpp.api.lb_as_v2_dump(pfx="::/0", protocol=0, port=0)
removed = [a for a in d if str(a.app_srv) == "10.0.0.4"]
check("removed AS still dumped", len(removed) == 1 and removed[0].flags & 1 == 0, d)

d = vpp.api.lb_as_v2_dump(pfx="192.0.2.0/24", protocol=6, port=80)
seen["ipv4_filtered_dump"] = len(d)

r = vpp.api.lb_add_del_vip_v2(pfx="2001:db8::/64", protocol=255, port=0, encap=1,
                              new_flows_table_length=65536, src_ip_sticky=True)
check("ipv6 all-port vip", r.retval == 0, r)
vips = vpp.api.lb_vip_dump()
seen["vips"] = sorted(f"{v.vip.pfx} {v.vip.protocol} {v.vip.port} {v.encap} {v.flow_table_length}"
                      for v in vips)

out = vpp.api.cli_inband(cmd="show lb vips verbose")
check("cli", out.retval == 0)
seen["cli_has_sticky"] = "src_ip_sticky" in out.reply

r = vpp.api.lb_add_del_vip(pfx="198.51.100.9/32", protocol=6, port=80, is_del=True)
check("delete unknown VIP", r.retval == -6, r)

vpp.disconnect()
print(json.dumps(seen))
