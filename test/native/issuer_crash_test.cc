// The historical crash, reproduced: before Linux 7.1 a signalled fence kept its
// ops pointer into the issuing module, so touching the fence after the module
// was unloaded (dropping it, asking the ops for a name) jumped into unmapped
// memory. IssuerLoadOptions::keep_ops (or the module flag
// DMABUF_ISSUER_F_KEEP_OPS) restores that behaviour; each case runs in a child
// process (issuer_crash_helper) and the parent checks how the child ended.
//
// What is asserted, per build:
//  - every build: with the sanitizers' SEGV handlers off in the child
//    (ASAN_OPTIONS/TSAN_OPTIONS handle_segv=0) the child is killed by SIGSEGV,
//    after printing the step that touches the fence, never "survived";
//  - ASan builds, additionally with ASan's own handler: the child exits non-zero
//    with an "AddressSanitizer: SEGV" report;
//  - 7.1 behaviour (the same steps without keep_ops): exit 0, "survived".
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "issuer_test_util.h"

using namespace issuer_test;

extern char** environ;

namespace {

struct ChildResult {
  bool signalled = false;
  int signal = 0;
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

std::string with_option(const char* var, const std::string& opt) {
  const char* cur = getenv(var);
  return std::string(var) + "=" + (cur && *cur ? std::string(cur) + ":" : "") + opt;
}

// fork + exec of the helper; between the two only async-signal-safe calls.
ChildResult run_helper(const std::vector<std::string>& args, bool sanitizer_segv_handler) {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    if (!sanitizer_segv_handler &&
        (!strncmp(*e, "ASAN_OPTIONS=", 13) || !strncmp(*e, "TSAN_OPTIONS=", 13)))
      continue;
    env_store.emplace_back(*e);
  }
  if (!sanitizer_segv_handler) {
    env_store.push_back(with_option("ASAN_OPTIONS", "handle_segv=0"));
    env_store.push_back(with_option("TSAN_OPTIONS", "handle_segv=0"));
  }
  std::vector<char*> envp, argv;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string helper = DMABUF_CRASH_HELPER;
  argv.push_back(helper.data());
  std::vector<std::string> arg_store(args);
  for (auto& s : arg_store) argv.push_back(s.data());
  argv.push_back(nullptr);

  int pipefd[2];
  ChildResult res;
  if (pipe(pipefd) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return res;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // the crash is expected: no core file
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(pipefd[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) res.output.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  res.signalled = WIFSIGNALED(status);
  if (res.signalled) res.signal = WTERMSIG(status);
  if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  return res;
}

bool has(const ChildResult& r, const char* s) { return r.output.find(s) != std::string::npos; }

void expect_sigsegv(const ChildResult& r, const char* last_step) {
  EXPECT_TRUE(r.signalled && r.signal == SIGSEGV)
      << "expected death by SIGSEGV; signalled=" << r.signalled << " signal=" << r.signal
      << " exit=" << r.exit_code << "\n" << r.output;
  EXPECT_TRUE(has(r, "unloaded")) << r.output;
  EXPECT_TRUE(has(r, last_step)) << r.output;
  EXPECT_FALSE(has(r, "survived")) << r.output;
}

void expect_survived(const ChildResult& r) {
  EXPECT_FALSE(r.signalled) << "signal " << r.signal << "\n" << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r, "ops after signal: detached")) << r.output;
  EXPECT_TRUE(has(r, "survived")) << r.output;
}

}  // namespace

TEST(IssuerPre71Crash, PutAfterUnloadFaultsInModuleMemory) {
  auto r = run_helper({module_path("names"), "keep", "put"}, false);
  EXPECT_TRUE(has(r, "ops after signal: attached")) << r.output;
  expect_sigsegv(r, "dropping the fence");
}

TEST(IssuerPre71Crash, OpsNameAfterUnloadFaultsInModuleMemory) {
  auto r = run_helper({module_path("names"), "keep", "ops-name"}, false);
  expect_sigsegv(r, "calling ops->get_driver_name");
  // The 7.1 accessor itself never touched the ops of the signalled fence.
  EXPECT_TRUE(has(r, "fence_driver_name: detached-driver")) << r.output;
}

TEST(IssuerPre71Crash, ModuleFlagRequestsTheOldBehaviour) {
  auto r = run_helper({test_module_path("keepops"), "flag", "put"}, false);
  EXPECT_TRUE(has(r, "loaded keep_ops")) << r.output;
  expect_sigsegv(r, "dropping the fence");
}

TEST(IssuerPre71Crash, DetachingFencesSurviveTheSameSteps) {
  expect_survived(run_helper({module_path("names"), "detach", "put"}, false));
  expect_survived(run_helper({module_path("names"), "detach", "ops-name"}, false));
  expect_survived(run_helper({module_path("ring"), "detach", "ops-name"}, false));
}

TEST(IssuerPre71Crash, SanitizerReportsTheStaleAccess) {
  const std::string mode = DMABUF_SANITIZE_MODE;
  if (mode != "address") GTEST_SKIP() << "only meaningful in the ASan build";
  auto r = run_helper({module_path("names"), "keep", "put"}, true);
  EXPECT_FALSE(has(r, "survived")) << r.output;
  EXPECT_TRUE(r.signalled || r.exit_code != 0) << r.output;
  EXPECT_TRUE(has(r, "AddressSanitizer: SEGV")) << r.output;
}
