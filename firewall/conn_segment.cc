#include "firewall/conn_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace palisade::fw {

struct SegmentHeader {
  char magic[8];
  uint32_t version;
  uint32_t entry_size;
  uint32_t capacity;
  uint32_t used;
  uint32_t clock_s;   // the owner's clock ...
  uint32_t pad;
  uint64_t boot_ns;   // ... at this CLOCK_BOOTTIME
  char boot_id[48];
};

namespace {

constexpr char kMagic[8] = {'P', 'A', 'L', 'C', 'O', 'N', 'N', '\n'};
constexpr size_t kHeaderBytes = 4096;  // entries start page-aligned

size_t Bytes(uint32_t capacity, size_t entry_size = sizeof(ConnEntry)) {
  return kHeaderBytes + size_t{capacity} * entry_size;
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

std::unique_ptr<ConnSegment> ConnSegment::Private(uint32_t capacity) {
  std::unique_ptr<ConnSegment> s(new ConnSegment());
  // Address space only (pages come on first touch): failing here is failing to allocate.
  if (!s->Map(capacity).ok()) std::abort();
  return s;
}

Status ConnSegment::Create(const std::string& path, uint32_t capacity, const std::string& boot_id,
                           std::unique_ptr<ConnSegment>* out) {
  std::unique_ptr<ConnSegment> s(new ConnSegment());
  // Built under a temporary name and renamed: a reader never sees a half-made header, and a
  // table still using the old file keeps it until it is released.
  const std::string tmp = path + ".new";
  s->fd_ = open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (s->fd_ < 0) return Status::Unavailable(Errno("cannot create " + tmp));
  if (ftruncate(s->fd_, static_cast<off_t>(Bytes(capacity))) != 0 ||
      posix_fallocate(s->fd_, 0, kHeaderBytes) != 0) {
    const Status err = Status::Unavailable(Errno("cannot size " + tmp));
    unlink(tmp.c_str());
    return err;
  }
  if (Status st = s->Map(capacity); !st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  SegmentHeader& h = *s->header_;
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kSegmentVersion;
  h.entry_size = sizeof(ConnEntry);
  h.capacity = capacity;
  std::strncpy(h.boot_id, boot_id.c_str(), sizeof(h.boot_id) - 1);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const Status err = Status::Unavailable(Errno("cannot rename " + tmp));
    unlink(tmp.c_str());
    return err;
  }
  s->path_ = path;
  *out = std::move(s);
  return Status::Ok();
}

Status ConnSegment::Map(uint32_t capacity) {
  const size_t bytes = Bytes(capacity);
  void* p;
  if (fd_ >= 0) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  } else {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }
  if (p == MAP_FAILED) return Status::Unavailable(Errno("cannot map the connection table"));
  header_ = static_cast<SegmentHeader*>(p);
  entries_ = reinterpret_cast<ConnEntry*>(static_cast<char*>(p) + kHeaderBytes);
  mapped_ = bytes;
  capacity_ = capacity;
  if (fd_ < 0) committed_ = capacity;  // private pages come on first touch, as heap memory does
  return Status::Ok();
}

ConnSegment::~ConnSegment() {
  if (header_ != nullptr) munmap(header_, mapped_);
  if (fd_ >= 0) close(fd_);
}

Status ConnSegment::Grow(uint32_t capacity) {
  if (capacity <= capacity_) return Status::Ok();
  const size_t bytes = Bytes(capacity);
  if (fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
    return Status::Unavailable(Errno("cannot grow " + path_));
  }
  void* p = mremap(header_, mapped_, bytes, MREMAP_MAYMOVE);
  if (p == MAP_FAILED) return Status::Unavailable(Errno("cannot grow the connection table"));
  header_ = static_cast<SegmentHeader*>(p);
  entries_ = reinterpret_cast<ConnEntry*>(static_cast<char*>(p) + kHeaderBytes);
  mapped_ = bytes;
  capacity_ = capacity;
  header_->capacity = capacity;
  if (fd_ < 0) committed_ = capacity;
  return Status::Ok();
}

bool ConnSegment::Commit(uint32_t n) {
  n = std::min(n, capacity_);
  const uint32_t have = committed();
  if (n <= have) return true;
  const off_t from = static_cast<off_t>(Bytes(have));
  if (posix_fallocate(fd_, from, static_cast<off_t>(Bytes(n)) - from) != 0) return false;
  // Map the new pages here, on the control thread: a worker's first write to a page would
  // otherwise fault, and the kernel would zero the page on the worker (4% of its cycles when
  // it sets up 200,000 connections a second). Without MADV_POPULATE_WRITE (Linux < 5.14) the
  // worker takes those faults, as before.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t start = static_cast<size_t>(from) & ~(page - 1);
  (void)madvise(reinterpret_cast<char*>(header_) + start, Bytes(n) - start, MADV_POPULATE_WRITE);
  committed_.store(n, std::memory_order_release);
  return true;
}

void ConnSegment::set_used(uint32_t used) {
  if (header_ != nullptr) header_->used = used;
}

void ConnSegment::Stamp(uint32_t now_s, uint64_t boot_ns) {
  if (header_ == nullptr) return;
  header_->clock_s = now_s;
  header_->boot_ns = boot_ns;
}

void ConnSegment::Discard() {
  if (!path_.empty()) unlink(path_.c_str());
  path_.clear();
}

Status ReadSegment(const std::string& path, const std::string& boot_id, uint64_t boot_ns_now,
                   std::vector<Conn>* out) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound(Errno("cannot open " + path));
  struct stat st {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < kHeaderBytes) {
    close(fd);
    return Status::Invalid("shorter than a segment header");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return Status::Unavailable(Errno("cannot map " + path));
  SegmentHeader h;
  std::memcpy(&h, p, sizeof(h));
  Status result = Status::Ok();
  // Version 1 stored exported Conns as they are; version 2 stores ConnEntry slots.
  const bool v1 = h.version == 1 && h.entry_size == sizeof(Conn);
  const bool v2 = h.version == kSegmentVersion && h.entry_size == sizeof(ConnEntry);
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    result = Status::Invalid("not a connection segment");
  } else if (!v1 && !v2) {
    result = Status::Invalid("layout version " + std::to_string(h.version) + " with " +
                             std::to_string(h.entry_size) + "-byte entries; this build reads version " +
                             std::to_string(kSegmentVersion) + " with " + std::to_string(sizeof(ConnEntry)) +
                             " and version 1 with " + std::to_string(sizeof(Conn)));
  } else if (boot_id.empty() || std::strncmp(h.boot_id, boot_id.c_str(), sizeof(h.boot_id)) != 0) {
    result = Status::Invalid("written before the host last booted");
  } else if (h.used > h.capacity || size < Bytes(h.used, h.entry_size)) {
    result = Status::Invalid("truncated: " + std::to_string(h.used) + " entries in use, room for " +
                             std::to_string((size - kHeaderBytes) / h.entry_size));
  } else {
    // Deadlines count on the writer's clock; its stamp says where that clock stood at a moment
    // of the boot clock, so the time left is the deadline minus the writer's "now" today.
    const uint64_t since_stamp_s = boot_ns_now > h.boot_ns ? (boot_ns_now - h.boot_ns) / 1000000000ull : 0;
    const uint64_t then_now_s = uint64_t{h.clock_s} + since_stamp_s;
    const char* base = static_cast<const char*>(p) + kHeaderBytes;
    for (uint32_t i = 0; i < h.used; i++) {
      Conn c;
      if (v1) {
        std::memcpy(&c, base + size_t{i} * sizeof(Conn), sizeof(Conn));  // checked on import, as any
      } else {
        const auto* slots = reinterpret_cast<const ConnEntry*>(base);
        if (!IsConn(slots[i].state) || !ReadConn(slots, h.used, i, &c)) continue;
      }
      if (c.state == ConnState::kFree || c.expires_s <= then_now_s) continue;
      c.expires_s = static_cast<uint32_t>(c.expires_s - then_now_s);
      c.next = 0;
      out->push_back(c);
    }
  }
  munmap(p, size);
  return result;
}

std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace palisade::fw
