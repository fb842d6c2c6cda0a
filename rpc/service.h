// The Palisade interface (palisade.capnp) served to one client connection: each call is checked,
// carried to the control thread through the ControlQueue, runs against the Switch there (or the
// migration protocol, on this thread), and its plain result is written into the reply here.
// Errors become exceptions carrying the Switch's message.
// Thread-safety: made and called on the RPC thread.
#pragma once

#include <memory>

#include "cluster/agent.h"
#include "migration/migration_service.h"
#include "rpc/background.h"
#include "rpc/palisade.capnp.h"
#include "rpc/transport.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade::rpc {

// `self` is the connection's entry in `connections`, which hello() fills in.
// cluster: the cluster agent (thread-safe status; null without --etcd). background: where rule
// tables compile (shared by the connections).
kj::Own<Palisade::Server> NewPalisadeService(Switch* sw, ControlQueue* queue,
                                            Connections* connections,
                                            migration::MigrationService* migrations,
                                            const cluster::ClusterAgent* cluster,
                                            Background* background,
                                            std::shared_ptr<ConnectionRecord> self);

}  // namespace palisade::rpc
