// Packet capture at a point of a port's IOChain (switch.h, vswitch/capture.h).
#include "vswitch/switch.h"

namespace palisade {

Status Switch::StartCapture(const CaptureSpec& spec, uint64_t owner, uint64_t* id) {
  auto it = ports_.find(spec.port);
  if (it == ports_.end()) return Status::NotFound("no port '" + spec.port + "'");
  if (spec.snaplen == 0 || spec.snaplen > kCaptureMaxBytes) {
    return Status::Invalid("snaplen must be 1-" + std::to_string(kCaptureMaxBytes));
  }
  if (!spec.in && !spec.out) return Status::Invalid("capture needs a direction: in, out or both");
  if (spec.point == CapturePoint::kPost && spec.after_slot != 0 &&
      it->second.chain->Find(spec.after_slot) == nullptr) {
    return Status::NotFound("port '" + spec.port + "' has no slot " +
                            std::to_string(spec.after_slot));
  }
  const uint16_t index = it->second.port->index();
  if (captures_[index].load(std::memory_order_relaxed) != nullptr) {
    return Status::Exists("port '" + spec.port +
                          "' is being captured already (one capture per port at a time)");
  }
  CaptureState state;
  state.capture = std::make_unique<Capture>(spec, static_cast<uint16_t>(workers_.size()));
  state.index = index;
  state.owner = owner;
  captures_[index].store(state.capture.get(), std::memory_order_release);
  *id = next_capture_id_++;
  capture_states_.emplace(*id, std::move(state));
  return Status::Ok();
}

void Switch::EndCapture(CaptureState& state) {
  if (!state.active) return;
  captures_[state.index].store(nullptr, std::memory_order_release);
  state.active = false;
  rcu_->Synchronize();  // no worker records into it any more: its rings and counters are final
}

Status Switch::ReadCapture(uint64_t id, size_t max, std::vector<CaptureRecord>* out,
                           CaptureTotals* totals) {
  auto it = capture_states_.find(id);
  if (it == capture_states_.end()) return Status::NotFound("no capture " + std::to_string(id));
  CaptureState& c = it->second;
  const uint64_t count = c.capture->spec().count;
  if (count != 0) max = static_cast<size_t>(std::min<uint64_t>(max, count - c.delivered));
  const size_t first = out->size();
  c.capture->Drain(max, out);
  c.delivered += out->size() - first;
  if (count != 0 && c.delivered >= count) EndCapture(c);
  totals->captured = c.delivered;
  totals->lost = c.capture->lost();
  totals->ended = !c.active;
  return Status::Ok();
}

Status Switch::StopCapture(uint64_t id, CaptureTotals* totals) {
  auto it = capture_states_.find(id);
  if (it == capture_states_.end()) return Status::NotFound("no capture " + std::to_string(id));
  EndCapture(it->second);
  totals->captured = it->second.delivered;
  totals->lost = it->second.capture->lost();
  totals->ended = true;
  capture_states_.erase(it);
  return Status::Ok();
}

void Switch::StopCaptures(uint64_t owner) {
  for (auto it = capture_states_.begin(); it != capture_states_.end();) {
    if (it->second.owner == owner) {
      EndCapture(it->second);
      it = capture_states_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace palisade
