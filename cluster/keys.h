// Where the cluster lives in etcd: one versioned prefix, intent written by operators, endpoints
// published by hosts, and host status. Switches watch one range, intent and endpoints; host
// status lies outside it, so a host's heartbeat never wakes the others.
// Constants and pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace palisade::cluster {

inline constexpr std::string_view kPrefix = "/palisade/v1/";
inline constexpr std::string_view kIntent = "/palisade/v1/intent/";
inline constexpr std::string_view kPolicies = "/palisade/v1/intent/policies/";
inline constexpr std::string_view kGroups = "/palisade/v1/intent/groups/";
inline constexpr std::string_view kLabels = "/palisade/v1/intent/labels/";
inline constexpr std::string_view kEndpoints = "/palisade/v1/net/endpoints/";
inline constexpr std::string_view kHosts = "/palisade/v1/status/hosts/";
// The range switches list and watch: [kWatchBegin, kWatchEnd) holds intent/ and net/.
inline constexpr std::string_view kWatchBegin = kIntent;
inline constexpr std::string_view kWatchEnd = "/palisade/v1/net0";

// The end of the range of every key that starts with `prefix` (etcd's prefix convention).
std::string PrefixEnd(std::string_view prefix);
// Names in keys: letters, digits and . _ - (no slashes), 1-128 characters.
bool ValidName(std::string_view name);
std::string EndpointKey(std::string_view vm, std::string_view host);
// The VM and host an endpoint key names; false when `key` is not one (no host after the VM).
bool ParseEndpointKey(std::string_view key, std::string* vm, std::string* host);

}  // namespace palisade::cluster
