// core/sync/sync_file_fd: an emulated fence as a real fd (one end of a
// SOCK_SEQPACKET socketpair that gets one status record when the fence
// signals). Export before and after signalling, the error status, a status
// peeked (never consumed) by every holder, the exporter gone (a child that
// exports and exits: end of file, -EPIPE), sync_fd_is_export, foreign data.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include <gtest/gtest.h>

#include "fd_count.h"

#include "core/fence/fence.h"
#include "core/sync/sync_file_fd.h"
#include "kernel/fd_channel.h"

using namespace dmabuf;

namespace {

using dmabuf::test::open_fd_count;

const char* mock_name(Fence*) { return "mock"; }
const FenceOps kMockOps = {.get_driver_name = mock_name, .get_timeline_name = mock_name};

Fence* mock_fence() {
  Fence* f = fence_alloc();
  fence_init(f, &kMockOps, nullptr, fence_context_alloc(1), 1);
  return f;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

class SyncFileFd : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override { EXPECT_EQ(open_fd_count(), fds_before_) << "fds leaked"; }
  int fds_before_ = 0;
};

TEST_F(SyncFileFd, ExportBeforeSignalTurnsReadableWithStatusAndTimestamp) {
  Fence* f = mock_fence();
  const int fd = sync_fd_export(f);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(sync_fd_is_export(fd));
  int status = 99;
  int64_t ts = -1;
  EXPECT_EQ(sync_fd_status(fd, &status, &ts), 0);
  EXPECT_FALSE(readable(fd));
  // A second export of the same fence: its own fd.
  const int fd2 = sync_fd_export(f);
  ASSERT_GE(fd2, 0);
  EXPECT_NE(fd2, fd);
  fence_signal(f);
  EXPECT_TRUE(readable(fd));
  EXPECT_TRUE(readable(fd2));
  ASSERT_EQ(sync_fd_status(fd, &status, &ts), 1);
  EXPECT_EQ(status, 1);
  EXPECT_EQ(ts, fence_timestamp(f));
  EXPECT_GT(ts, 0);
  // Peeked, not consumed: every read (and every holder of a dup) sees it.
  const int d = dup(fd);
  int s2 = 0;
  int64_t t2 = 0;
  ASSERT_EQ(sync_fd_status(d, &s2, &t2), 1);
  EXPECT_EQ(s2, 1);
  EXPECT_EQ(t2, ts);
  ASSERT_EQ(sync_fd_status(fd, &s2, &t2), 1);
  ASSERT_EQ(sync_fd_status(fd2, &s2, &t2), 1);
  EXPECT_EQ(t2, ts);
  // The reading end cannot write back.
  const char x = 0;
  EXPECT_LT(send(fd, &x, 1, MSG_DONTWAIT | MSG_NOSIGNAL), 0);
  close(d);
  close(fd);
  close(fd2);
  fence_put(f);
}

TEST_F(SyncFileFd, ExportAfterSignalIsReadableAtOnce) {
  Fence* f = mock_fence();
  fence_signal(f);
  const int fd = sync_fd_export(f);
  ASSERT_GE(fd, 0);
  fence_put(f);  // the fd does not need the fence
  EXPECT_TRUE(readable(fd));
  int status = 0;
  int64_t ts = 0;
  ASSERT_EQ(sync_fd_status(fd, &status, &ts), 1);
  EXPECT_EQ(status, 1);
  EXPECT_GT(ts, 0);
  close(fd);
}

TEST_F(SyncFileFd, ErrorStatusCrosses) {
  Fence* f = mock_fence();
  const int before_signal = sync_fd_export(f);
  fence_set_error(f, -EIO);
  fence_signal(f);
  const int after_signal = sync_fd_export(f);
  for (int fd : {before_signal, after_signal}) {
    ASSERT_GE(fd, 0);
    int status = 0;
    int64_t ts = 0;
    ASSERT_EQ(sync_fd_status(fd, &status, &ts), 1);
    EXPECT_EQ(status, -EIO);
    EXPECT_EQ(ts, fence_timestamp(f));
    close(fd);
  }
  fence_put(f);
}

TEST_F(SyncFileFd, ClosingTheFdBeforeSignalIsFine) {
  Fence* f = mock_fence();
  const int fd = sync_fd_export(f);
  ASSERT_GE(fd, 0);
  close(fd);            // the record goes nowhere: no SIGPIPE, no leak
  fence_signal(f);      // sends to a closed peer (MSG_NOSIGNAL) and closes its end
  fence_put(f);
}

TEST_F(SyncFileFd, SignalledFromAnotherThread) {
  Fence* f = mock_fence();
  const int fd = sync_fd_export(f);
  ASSERT_GE(fd, 0);
  std::thread t([f] { fence_signal(f); });
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1);
  t.join();
  int status = 0;
  int64_t ts = 0;
  ASSERT_EQ(sync_fd_status(fd, &status, &ts), 1);
  EXPECT_EQ(status, 1);
  close(fd);
  fence_put(f);
}

// The exporter goes away without signalling: the fd reads end of file, which
// is "signalled, -EPIPE" -- the fence's waiters never hang.
TEST_F(SyncFileFd, ExporterGoneIsEpipe) {
  auto ch = kernel::fd_channel_pair();
  ASSERT_TRUE(ch.ok());
  auto& [a, b] = *ch;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    b.reset();
    Fence* f = mock_fence();  // never signalled
    const int fd = sync_fd_export(f);
    if (fd < 0) _exit(10);
    if (!kernel::fd_channel_send(a.get(), "f", 1, &fd, 1).ok()) _exit(11);
    _exit(0);
  }
  a.reset();
  pollfd pb{b.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pb, 1, 20000), 1);
  auto m = kernel::fd_channel_recv(b.get());
  ASSERT_TRUE(m.ok()) << m.error().describe();
  ASSERT_EQ(m->fds.size(), 1u);
  const int fd = m->fds[0].get();
  EXPECT_TRUE(sync_fd_is_export(fd));
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 20000), 1);  // end of file polls readable
  int status = 0;
  int64_t ts = 0;
  ASSERT_EQ(sync_fd_status(fd, &status, &ts), 1);
  EXPECT_EQ(status, -EPIPE);
  EXPECT_GT(ts, 0);
}

TEST_F(SyncFileFd, IsExportAndForeignData) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  EXPECT_FALSE(sync_fd_is_export(p[0]));
  int status = 0;
  int64_t ts = 0;
  EXPECT_LT(sync_fd_status(p[0], &status, &ts), 0);  // not a socket: ENOTSOCK
  close(p[0]);
  close(p[1]);
  EXPECT_FALSE(sync_fd_is_export(-1));
  EXPECT_FALSE(sync_fd_is_export(1 << 20));

  int s[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
  EXPECT_FALSE(sync_fd_is_export(s[0]));
  close(s[0]);
  close(s[1]);

  // An AF_UNIX SOCK_SEQPACKET socket passes the cheap check; its record is
  // then checked: something else is -EINVAL, a wrong magic too.
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s), 0);
  EXPECT_TRUE(sync_fd_is_export(s[0]));
  EXPECT_EQ(sync_fd_status(s[0], &status, &ts), 0);  // nothing yet: pending
  ASSERT_EQ(send(s[1], "abc", 3, 0), 3);
  EXPECT_EQ(sync_fd_status(s[0], &status, &ts), -EINVAL);
  char drain[16];
  ASSERT_EQ(recv(s[0], drain, sizeof drain, 0), 3);
  const SyncFdRecord bad{kSyncFdMagic + 1, 1, 5};
  ASSERT_EQ(send(s[1], &bad, sizeof bad, 0), static_cast<ssize_t>(sizeof bad));
  EXPECT_EQ(sync_fd_status(s[0], &status, &ts), -EINVAL);
  ASSERT_EQ(recv(s[0], drain, sizeof drain, 0), static_cast<ssize_t>(sizeof bad));
  const SyncFdRecord good{kSyncFdMagic, -ETIMEDOUT, 1234};
  ASSERT_EQ(send(s[1], &good, sizeof good, 0), static_cast<ssize_t>(sizeof good));
  ASSERT_EQ(sync_fd_status(s[0], &status, &ts), 1);
  EXPECT_EQ(status, -ETIMEDOUT);
  EXPECT_EQ(ts, 1234);
  close(s[0]);
  close(s[1]);

  EXPECT_EQ(sync_fd_export(nullptr), -EINVAL);
}

}  // namespace
