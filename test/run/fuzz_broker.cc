// A fuzzer for the broker's protocol: random requests with the right magic
// (every op, known and random ioctl numbers, random lengths, real and made-up
// inodes, fds attached at random, the ioctl argument NULL at random) on several
// connections, some closed mid-request. The broker must answer each (or drop
// a malformed connection) and keep serving: a ping on a fresh connection after
// every batch. Run under `dmabuf run` (test/run/run-tests.sh):
//   fuzz_broker SEED ROUNDS
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernel/uapi.h"
#include "run/msg.h"
#include "run/protocol.h"

using namespace dmabuf::run;

namespace {

int connect_broker() {
  const char* name = getenv(kEnvSocket);
  int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path + 1, name, strlen(name));
  if (connect(s, reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + 1 + strlen(name)) < 0) {
    perror("connect");
    exit(1);
  }
  return s;
}

// One round trip; false if the broker dropped the connection.
bool roundtrip(int s, const Request& req, const std::vector<uint8_t>& payload, const int* fds, unsigned nfds,
               int64_t* ret, std::vector<int>* got) {
  if (msg_send(s, &req, sizeof req, payload.data(), payload.size(), fds, nfds) < 0) return false;
  static uint8_t buf[sizeof(Reply) + kMaxPayload];
  int rfds[kMaxFds];
  unsigned n = 0;
  ssize_t r = msg_recv(s, buf, sizeof buf, rfds, kMaxFds, &n);
  for (unsigned i = 0; i < n; ++i) got->push_back(rfds[i]);
  if (r < static_cast<ssize_t>(sizeof(Reply))) return false;
  Reply rep;
  memcpy(&rep, buf, sizeof rep);
  *ret = rep.ret;
  return rep.magic == kMagic;
}

uint64_t ino_of(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || !getenv(kEnvSocket)) {
    fprintf(stderr, "usage (under dmabuf run): fuzz_broker SEED ROUNDS\n");
    return 2;
  }
  std::mt19937_64 rng(strtoull(argv[1], nullptr, 0));
  const long rounds = atol(argv[2]);
  auto pick = [&](uint64_t n) { return rng() % n; };
  const uint64_t cmds[] = {DMA_HEAP_IOCTL_ALLOC, DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME_A, DMA_BUF_SET_NAME_B,
                           DMA_BUF_IOCTL_EXPORT_SYNC_FILE, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, UDMABUF_CREATE,
                           UDMABUF_CREATE_LIST, SYNC_IOC_MERGE, SYNC_IOC_FILE_INFO, SYNC_IOC_SET_DEADLINE,
                           dmabuf::kernel::uapi::kSwSyncIocCreateFence, dmabuf::kernel::uapi::kSwSyncIocInc,
                           dmabuf::kernel::uapi::kSwSyncGetDeadline};
  const char* paths[] = {"/dev/dma_heap/system", "/dev/udmabuf", "/sys/kernel/debug/sync/sw_sync",
                         "/dev/dma_heap/nosuch", "/dev/dma_heap/../x", ""};
  std::vector<int> objects;  // fds of objects made along the way
  int memfd = memfd_create("fuzz", MFD_ALLOW_SEALING);
  if (memfd < 0 || ftruncate(memfd, 1 << 20) < 0 || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) return 1;
  int conn = connect_broker();
  long answered = 0, dropped = 0;
  for (long i = 0; i < rounds; ++i) {
    Request req{};
    req.magic = kMagic;
    req.op = static_cast<Op>(pick(12));
    req.cmd = pick(4) ? cmds[pick(sizeof cmds / sizeof cmds[0])] : rng();
    req.a0 = pick(2) ? pick(1 << 22) : rng();
    req.a1 = pick(2) ? pick(1 << 22) : rng();
    req.arg_null = pick(8) == 0;
    auto any_ino = [&]() -> uint64_t {
      if (!objects.empty() && pick(4)) return ino_of(objects[pick(objects.size())]);
      return pick(2) ? rng() : pick(100);
    };
    req.ino = any_ino();
    req.refs[0] = any_ino();
    req.refs[1] = any_ino();
    std::vector<uint8_t> payload(pick(4) ? pick(128) : pick(4096));
    for (auto& b : payload) b = static_cast<uint8_t>(rng());
    if (req.op == Op::kOpen && pick(2)) {
      const char* p = paths[pick(sizeof paths / sizeof paths[0])];
      payload.assign(p, p + strlen(p) + pick(2));
    }
    if (pick(3) == 0 && payload.size() >= 8) {  // plausible small numbers: counts, flags, seqnos
      for (size_t k = 0; k + 4 <= payload.size() && k < 64; k += 4) {
        uint32_t v = static_cast<uint32_t>(pick(6));
        memcpy(payload.data() + k, &v, 4);
      }
    }
    req.len = static_cast<uint32_t>(payload.size());
    int fds[3] = {memfd, memfd, objects.empty() ? memfd : objects[pick(objects.size())]};
    unsigned nfds = static_cast<unsigned>(pick(4));
    if (pick(50) == 0) req.len += 7;  // a lying length: malformed, the connection goes
    int64_t ret = 0;
    std::vector<int> got;
    if (roundtrip(conn, req, payload, fds, nfds, &ret, &got)) ++answered;
    else {
      ++dropped;
      close(conn);
      conn = connect_broker();
    }
    for (int fd : got) {
      if (objects.size() < 200 && pick(2)) objects.push_back(fd);
      else close(fd);
    }
    if (pick(40) == 0 && !objects.empty()) {  // close some objects: hang-ups while others are in use
      size_t k = pick(objects.size());
      close(objects[k]);
      objects.erase(objects.begin() + static_cast<long>(k));
    }
    if (i % 500 == 499) {  // still serving?
      int s = connect_broker();
      Request ping{};
      ping.magic = kMagic;
      ping.op = Op::kPing;
      std::vector<int> none;
      int64_t r = -1;
      if (!roundtrip(s, ping, {}, nullptr, 0, &r, &none) || r != 0) {
        fprintf(stderr, "fuzz_broker: the broker stopped answering after %ld requests\n", i + 1);
        return 1;
      }
      close(s);
    }
  }
  printf("fuzz_broker: %ld requests, %ld answered, %ld connections dropped as malformed\n", rounds, answered, dropped);
  return 0;
}
