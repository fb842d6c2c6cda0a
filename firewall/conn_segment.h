// ConnSegment: the memory a connection table's entries live in. Either a file (on tmpfs, e.g.
// /dev/shm) that outlives the process, so that a palisaded restarted after a crash reads back
// every connection as it was at the moment of the crash, or private memory.
//
// Layout: a 4 KiB header (magic, layout version, entry size, capacity, slots in use, the boot
// it was written in and a clock reference), then `capacity` 96-byte slots (ConnEntry; version
// 1, before, held 128-byte Conns and is still read back, so an upgrade keeps connections). The file is sized
// for the capacity but sparse: pages are allocated ahead of use by Commit (control thread), so
// the datapath never allocates and a full tmpfs is an error on the control thread, not a fault
// on a worker. Entries are written in place by the table that owns them; nothing is synced, as
// the file is for process crashes (tmpfs is gone after a reboot anyway).
//
// ReadSegment is how a later process reads one back: the header is checked (an unknown layout, a
// file from before a reboot, a truncated file: refused with the reason, never misread) and the
// live entries are returned as exports are (time left instead of a deadline), to go through
// StatefulFilter::ImportConns like any other untrusted entries.
//
// Thread-safety: the owner (ConnTable, under its filter's lock) serialises access; Commit and
// the clock stamp are control-thread calls that do not move the mapping.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "firewall/conn_entry.h"

namespace palisade::fw {

inline constexpr uint32_t kSegmentVersion = 2;
struct SegmentHeader;  // conn_segment.cc

class ConnSegment {
 public:
  // Private memory for `capacity` slots (nothing outlives the process).
  static std::unique_ptr<ConnSegment> Private(uint32_t capacity);
  // A file at `path` for `capacity` slots, replacing any file there atomically (an older
  // table of the same port keeps its own until it is released). `boot_id` identifies this boot
  // (/proc/sys/kernel/random/boot_id).
  static Status Create(const std::string& path, uint32_t capacity, const std::string& boot_id,
                       std::unique_ptr<ConnSegment>* out);
  ~ConnSegment();
  ConnSegment(const ConnSegment&) = delete;
  ConnSegment& operator=(const ConnSegment&) = delete;

  ConnEntry* entries() const { return entries_; }
  uint32_t capacity() const { return capacity_; }
  const std::string& path() const { return path_; }
  bool shared() const { return fd_ >= 0; }  // a file, not private memory
  // Room for `capacity` slots; the entries may move (the owner holds its lock).
  Status Grow(uint32_t capacity);
  // Backs the first n slots with memory (n only grows); false when it cannot (tmpfs full).
  bool Commit(uint32_t n);
  uint32_t committed() const { return committed_.load(std::memory_order_acquire); }
  // Slots ever used, from the start: a reader looks no further.
  void set_used(uint32_t used);
  // The owner's clock (seconds, as the entries' deadlines count) at a moment of the boot clock
  // (CLOCK_BOOTTIME): a reader turns deadlines into time left with it.
  void Stamp(uint32_t now_s, uint64_t boot_ns);
  // Removes the file (the port or its firewall is gone); the memory stays until destruction.
  void Discard();

 private:
  ConnSegment() = default;
  Status Map(uint32_t capacity);

  int fd_ = -1;
  std::string path_;
  SegmentHeader* header_ = nullptr;
  ConnEntry* entries_ = nullptr;
  size_t mapped_ = 0;
  uint32_t capacity_ = 0;
  std::atomic<uint32_t> committed_{0};  // written by Commit outside the owner's lock
};

// The live entries of the segment file at `path`, with deadlines turned into the seconds they
// have left at `boot_ns_now` (CLOCK_BOOTTIME); expired ones are left out, and so is a wide
// entry without its addresses. Refuses (with why) a file that is not a segment of a layout
// version this build reads (1 or 2), was written in another boot, or is shorter than its
// header says.
Status ReadSegment(const std::string& path, const std::string& boot_id, uint64_t boot_ns_now,
                   std::vector<Conn>* out);

// This boot's id, or "" where the kernel does not tell.
std::string BootId();

}  // namespace palisade::fw
