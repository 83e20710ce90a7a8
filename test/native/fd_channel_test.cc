// native/kernel/fd_channel: SOCK_SEQPACKET messages with SCM_RIGHTS fds --
// pair/send/recv, the limits (64 KiB, SCM_MAX_FD), the end of the stream and a
// peer gone (EPIPE, the socket's one-shot ECONNRESET), MSG_CTRUNC in a child
// out of fds (EMFILE, nothing leaked), MSG_TRUNC from a foreign sender, and
// listen/connect/accept. Every test checks /proc/self/fd before and after.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fd_count.h"

#include "kernel/fd_channel.h"

using namespace dmabuf::kernel;

namespace {

using dmabuf::test::open_fd_count;

struct Pipe {
  int rd = -1, wr = -1;
  Pipe() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
      rd = p[0];
      wr = p[1];
    }
  }
  ~Pipe() {
    if (rd >= 0) close(rd);
    if (wr >= 0) close(wr);
  }
};

bool same_file(int a, int b) {
  struct stat x, y;
  return fstat(a, &x) == 0 && fstat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

class FdChannel : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override { EXPECT_EQ(open_fd_count(), fds_before_) << "fds leaked"; }
  std::pair<UniqueFd, UniqueFd> pair() {
    auto r = fd_channel_pair();
    EXPECT_TRUE(r.ok());
    return std::move(*r);
  }
  int fds_before_ = 0;
};

TEST_F(FdChannel, PairCarriesBytesAndFdsInOrder) {
  auto [a, b] = pair();
  Pipe p;
  ASSERT_GE(p.rd, 0);
  const int fds[] = {p.rd, p.wr, p.rd};
  ASSERT_TRUE(fd_channel_send(a.get(), "hello", 5, fds, 3).ok());
  ASSERT_TRUE(fd_channel_send(a.get(), "second", 6, nullptr, 0).ok());
  auto m = fd_channel_recv(b.get());
  ASSERT_TRUE(m.ok()) << m.error().describe();
  EXPECT_FALSE(m->eof);
  EXPECT_EQ(std::string(m->data.begin(), m->data.end()), "hello");
  ASSERT_EQ(m->fds.size(), 3u);
  EXPECT_TRUE(same_file(m->fds[0].get(), p.rd));
  EXPECT_TRUE(same_file(m->fds[1].get(), p.wr));
  EXPECT_TRUE(same_file(m->fds[2].get(), p.rd));
  EXPECT_NE(m->fds[0].get(), m->fds[2].get());
  for (auto& fd : m->fds) {
    EXPECT_NE(fd.get(), p.rd);
    EXPECT_NE(fd.get(), p.wr);
    EXPECT_TRUE(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);  // MSG_CMSG_CLOEXEC
  }
  // The received write end works.
  ASSERT_EQ(write(m->fds[1].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(read(p.rd, &c, 1), 1);
  EXPECT_EQ(c, 'x');
  auto m2 = fd_channel_recv(b.get());
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(std::string(m2->data.begin(), m2->data.end()), "second");
  EXPECT_TRUE(m2->fds.empty());
  // Nothing queued: EAGAIN, non-blocking.
  auto m3 = fd_channel_recv(b.get());
  ASSERT_FALSE(m3.ok());
  EXPECT_EQ(m3.err(), -EAGAIN);
  // Both ends non-blocking and close-on-exec.
  EXPECT_TRUE(fcntl(a.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(fcntl(b.get(), F_GETFD) & FD_CLOEXEC);
}

TEST_F(FdChannel, PeerCredentialsAreThisProcess) {
  auto [a, b] = pair();
  auto c = fd_channel_peer(a.get());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->pid, getpid());
  EXPECT_EQ(c->uid, getuid());
  EXPECT_EQ(c->gid, getgid());
  EXPECT_EQ(fd_channel_peer(-1).err(), -EBADF);
}

TEST_F(FdChannel, LimitsEmsgsizeAndScmMaxFd) {
  auto [a, b] = pair();
  Pipe p;
  std::vector<uint8_t> big(kFdChannelMaxMessage + 1, 'x');
  auto r = fd_channel_send(a.get(), big.data(), big.size(), &p.rd, 1);
  EXPECT_EQ(r.err(), -EMSGSIZE);
  // Exactly the limit is fine.
  ASSERT_TRUE(fd_channel_send(a.get(), big.data(), kFdChannelMaxMessage, nullptr, 0).ok());
  auto m = fd_channel_recv(b.get());
  ASSERT_TRUE(m.ok()) << m.error().describe();
  EXPECT_EQ(m->data.size(), kFdChannelMaxMessage);

  std::vector<int> fds(kScmMaxFd + 1, p.rd);
  EXPECT_EQ(fd_channel_send(a.get(), "x", 1, fds.data(), fds.size()).err(), -EINVAL);
  ASSERT_TRUE(fd_channel_send(a.get(), "x", 1, fds.data(), kScmMaxFd).ok());
  auto m2 = fd_channel_recv(b.get());
  ASSERT_TRUE(m2.ok()) << m2.error().describe();
  EXPECT_EQ(m2->fds.size(), kScmMaxFd);
  for (auto& fd : m2->fds) EXPECT_TRUE(same_file(fd.get(), p.rd));
}

TEST_F(FdChannel, BadFdInTheListIsEbadfAndSendsNothing) {
  auto [a, b] = pair();
  Pipe p;
  const int fds[] = {p.rd, 1 << 20};
  EXPECT_EQ(fd_channel_send(a.get(), "x", 1, fds, 2).err(), -EBADF);
  EXPECT_EQ(fd_channel_recv(b.get()).err(), -EAGAIN);
  EXPECT_EQ(fd_channel_send(-1, "x", 1, nullptr, 0).err(), -EBADF);
  EXPECT_EQ(fd_channel_recv(-1).err(), -EBADF);
}

TEST_F(FdChannel, OversizedForeignMessageIsEmsgsizeWithItsFdsClosed) {
  auto [a, b] = pair();
  Pipe p;
  const int before = open_fd_count();
  // A sender that is not fd_channel_send (no size check): raw sendmsg.
  std::vector<char> big(kFdChannelMaxMessage + 100, 'y');
  iovec iov{big.data(), big.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof(ctl);
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const int two[] = {p.rd, p.wr};
  memcpy(CMSG_DATA(c), two, sizeof(two));
  ASSERT_EQ(sendmsg(a.get(), &mh, MSG_DONTWAIT), static_cast<ssize_t>(big.size()));
  ASSERT_TRUE(fd_channel_send(a.get(), "next", 4, nullptr, 0).ok());
  auto m = fd_channel_recv(b.get());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.err(), -EMSGSIZE);
  EXPECT_EQ(open_fd_count(), before);
  // The channel goes on.
  auto m2 = fd_channel_recv(b.get());
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(std::string(m2->data.begin(), m2->data.end()), "next");
}

TEST_F(FdChannel, FullQueueIsEagainThenDrains) {
  auto [a, b] = pair();
  std::vector<uint8_t> msg(8192, 'q');
  int sent = 0;
  KStatus r;
  for (; sent < 100000; ++sent) {
    r = fd_channel_send(a.get(), msg.data(), msg.size(), nullptr, 0);
    if (!r.ok()) break;
  }
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err(), -EAGAIN);
  EXPECT_GT(sent, 0);
  pollfd pf{a.get(), POLLOUT, 0};
  EXPECT_EQ(poll(&pf, 1, 0), 0);  // not writable while full
  for (int i = 0; i < sent; ++i) {
    auto m = fd_channel_recv(b.get());
    ASSERT_TRUE(m.ok()) << i;
    EXPECT_EQ(m->data.size(), msg.size());
  }
  EXPECT_EQ(poll(&pf, 1, 0), 1);
  EXPECT_TRUE(fd_channel_send(a.get(), "ok", 2, nullptr, 0).ok());
  EXPECT_TRUE(fd_channel_recv(b.get()).ok());
}

TEST_F(FdChannel, EndOfStreamAfterTheQueuedMessagesAndEpipe) {
  auto [a, b] = pair();
  Pipe p;
  ASSERT_TRUE(fd_channel_send(a.get(), "one", 3, &p.wr, 1).ok());
  a.reset();
  auto m = fd_channel_recv(b.get());
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->eof);
  EXPECT_EQ(m->fds.size(), 1u);
  for (int i = 0; i < 2; ++i) {
    auto e = fd_channel_recv(b.get());
    ASSERT_TRUE(e.ok()) << e.error().describe();
    EXPECT_TRUE(e->eof);
    EXPECT_TRUE(e->data.empty());
    EXPECT_TRUE(e->fds.empty());
  }
  auto s = fd_channel_send(b.get(), "x", 1, &p.rd, 1);
  EXPECT_EQ(s.err(), -EPIPE);
}

// The peer closes with messages of ours unread: the kernel sets our socket's
// pending error (ECONNRESET, once). The messages it sent before closing still
// arrive, then the end of the stream.
TEST_F(FdChannel, PeerClosingWithUnreadDataLosesNothing) {
  auto [a, b] = pair();
  ASSERT_TRUE(fd_channel_send(a.get(), "unread", 6, nullptr, 0).ok());
  ASSERT_TRUE(fd_channel_send(b.get(), "b1", 2, nullptr, 0).ok());
  ASSERT_TRUE(fd_channel_send(b.get(), "b2", 2, nullptr, 0).ok());
  b.reset();
  auto m1 = fd_channel_recv(a.get());
  ASSERT_TRUE(m1.ok()) << m1.error().describe();
  EXPECT_EQ(std::string(m1->data.begin(), m1->data.end()), "b1");
  auto m2 = fd_channel_recv(a.get());
  ASSERT_TRUE(m2.ok()) << m2.error().describe();
  EXPECT_EQ(std::string(m2->data.begin(), m2->data.end()), "b2");
  auto e = fd_channel_recv(a.get());
  ASSERT_TRUE(e.ok()) << e.error().describe();
  EXPECT_TRUE(e->eof);
  const int err = fd_channel_send(a.get(), "x", 1, nullptr, 0).err();
  EXPECT_TRUE(err == -EPIPE || err == -ECONNRESET) << err;
}

// MSG_CTRUNC: a receiver out of fds. In a child (RLIMIT_NOFILE is per process):
// EMFILE, every fd that did arrive closed, and the next message still arrives.
TEST_F(FdChannel, CtruncInAReceiverOutOfFdsIsEmfileAndLeaksNothing) {
  auto [a, b] = pair();
  Pipe p;
  Pipe report;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    a.reset();
    close(report.rd);
    // New fds take the lowest free numbers: room for a few more than are open
    // (an open fd above the limit stays open).
    const rlim_t lim = static_cast<rlim_t>(open_fd_count() + 8);
    rlimit rl{lim, lim};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(10);
    pollfd pf{b.get(), POLLIN, -1};
    if (poll(&pf, 1, 10000) != 1) _exit(11);
    const int before = open_fd_count();
    auto m = fd_channel_recv(b.get());
    const int after = open_fd_count();
    std::string line = m.ok() ? std::string("ok") : m.error().describe();
    line += "\n" + std::to_string(before) + " " + std::to_string(after) + "\n";
    // The socket is non-blocking and the parent may not have sent "next" yet.
    if (poll(&pf, 1, 10000) != 1) _exit(14);
    auto next = fd_channel_recv(b.get());
    line += next.ok() ? std::string(next->data.begin(), next->data.end()) + " " + std::to_string(next->fds.size())
                      : "next: " + next.error().describe();
    if (write(report.wr, line.data(), line.size()) < 0) _exit(12);
    _exit(!m.ok() && m.err() == -EMFILE ? 0 : 13);
  }
  std::vector<int> many(100, p.rd);
  ASSERT_TRUE(fd_channel_send(a.get(), "many", 4, many.data(), many.size()).ok());
  ASSERT_TRUE(fd_channel_send(a.get(), "next", 4, &p.rd, 1).ok());
  close(report.wr);
  report.wr = -1;
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(report.rd, buf, sizeof buf)) > 0) out.append(buf, n);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << out;
  EXPECT_NE(out.find("EMFILE"), std::string::npos) << out;
  EXPECT_NE(out.find("MSG_CTRUNC"), std::string::npos) << out;
  int before = -1, after = -2;
  const size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos) << out;
  ASSERT_EQ(sscanf(out.c_str() + nl + 1, "%d %d", &before, &after), 2) << out;
  EXPECT_EQ(before, after) << out;
  EXPECT_NE(out.find("next 1"), std::string::npos) << out;
}

class FdChannelSocket : public FdChannel {
 protected:
  void SetUp() override {
    FdChannel::SetUp();
    char tmpl[] = "/tmp/fdch-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s.sock";
  }
  void TearDown() override {
    unlink(path_.c_str());
    unlink((dir_ + "/file").c_str());
    rmdir(dir_.c_str());
    FdChannel::TearDown();
  }
  std::string dir_, path_;
};

TEST_F(FdChannelSocket, ListenConnectAcceptWithModeAndPeer) {
  auto l = fd_channel_listen(path_.c_str(), 0600, 8);
  ASSERT_TRUE(l.ok()) << l.error().describe();
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(fd_channel_accept(l->get()).err(), -EAGAIN);  // nobody yet, non-blocking
  auto c = fd_channel_connect(path_.c_str());
  ASSERT_TRUE(c.ok()) << c.error().describe();
  EXPECT_TRUE(fcntl(c->get(), F_GETFL) & O_NONBLOCK);
  auto s = fd_channel_accept(l->get());
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_TRUE(fcntl(s->get(), F_GETFL) & O_NONBLOCK);
  auto pc = fd_channel_peer(s->get());
  ASSERT_TRUE(pc.ok());
  EXPECT_EQ(pc->pid, getpid());
  Pipe p;
  ASSERT_TRUE(fd_channel_send(c->get(), "hi", 2, &p.wr, 1).ok());
  auto m = fd_channel_recv(s->get());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->fds.size(), 1u);

  // Another server there: EADDRINUSE, and the first one keeps its file.
  auto l2 = fd_channel_listen(path_.c_str(), 0600, 8);
  EXPECT_EQ(l2.err(), -EADDRINUSE);
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(fd_channel_connect(path_.c_str()).ok());
}

TEST_F(FdChannelSocket, ModeIsSetBeforeListening) {
  auto l = fd_channel_listen(path_.c_str(), 0660, 8);
  ASSERT_TRUE(l.ok());
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST_F(FdChannelSocket, StaleSocketIsReplacedOtherFilesAreNot) {
  {
    // A bound socket nobody listens on: what a dead server leaves.
    UniqueFd s(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, path_.c_str());
    ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  }
  EXPECT_EQ(fd_channel_connect(path_.c_str()).err(), -ECONNREFUSED);
  auto l = fd_channel_listen(path_.c_str(), 0600, 8);
  ASSERT_TRUE(l.ok()) << l.error().describe();
  auto c = fd_channel_connect(path_.c_str());
  EXPECT_TRUE(c.ok());

  const std::string file = dir_ + "/file";
  const int fd = open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  close(fd);
  auto l2 = fd_channel_listen(file.c_str(), 0600, 8);
  EXPECT_EQ(l2.err(), -EADDRINUSE);
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(FdChannelSocket, BadPaths) {
  EXPECT_EQ(fd_channel_connect((dir_ + "/missing").c_str()).err(), -ENOENT);
  const std::string long_path = dir_ + "/" + std::string(120, 'x');
  EXPECT_EQ(fd_channel_connect(long_path.c_str()).err(), -ENAMETOOLONG);
  EXPECT_EQ(fd_channel_listen(long_path.c_str(), 0600, 8).err(), -ENAMETOOLONG);
  EXPECT_EQ(fd_channel_listen("", 0600, 8).err(), -EINVAL);
  EXPECT_EQ(fd_channel_connect("").err(), -EINVAL);
  EXPECT_EQ(fd_channel_listen((dir_ + "/no/such/dir/s").c_str(), 0600, 8).err(), -ENOENT);
  EXPECT_EQ(fd_channel_accept(-1).err(), -EBADF);
}

}  // namespace
