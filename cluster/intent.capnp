# The values the cluster keeps in etcd under /palisade/v1/ (cluster/keys.h), each stored as Cap'n
# Proto's JSON codec writes it, so that `etcdctl get` shows readable values. Operators write the
# intent (policies, groups, VM labels) with palisadectl; each switch publishes its own VMs'
# endpoints under its host's lease. Ordinals are never reused.
@0xe7ec0ce59241463e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("palisade::cluster");

# /palisade/v1/intent/policies/NAME
struct Policy {
  priority @0 :Int32;          # lower first; then by name
  appliedTo @1 :List(Text);    # vm:NAME, group:NAME
  text @2 :Text;               # one ruleset (and its _L2 companion) and address sets, FORMATS.md grammar
}

# /palisade/v1/intent/groups/NAME
struct Group {
  members @0 :List(Text);      # vm:NAME, label:KEY=VALUE, group:NAME, ip:ADDR[/LEN]
}

struct Label {
  key @0 :Text;
  value @1 :Text;
}

# /palisade/v1/intent/labels/VM
struct VmLabels {
  labels @0 :List(Label);
}

# /palisade/v1/net/endpoints/VM/HOST, under the host's lease
struct Endpoint {
  macs @0 :List(Text);
  addresses @1 :List(Text);    # bound and learned
  generation @2 :UInt64;       # grows with every change the host publishes
  state @3 :Text;              # active, or incoming (arriving by live migration)
}

# /palisade/v1/status/hosts/HOST, under the host's lease (switches do not watch it)
struct HostStatus {
  started @0 :Text;            # UTC
  revision @1 :Int64;          # the cluster revision its tables come from
  vms @2 :UInt32;
}

# A switch's last view of the watched range, kept on disk (cluster/agent.h).
struct Snapshot {
  revision @0 :Int64;
  keys @1 :List(Text);
  values @2 :List(Text);
}
