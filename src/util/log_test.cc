// Lines from several threads reach stderr whole, even lines longer than a pipe takes in one
// piece (PIPE_BUF) while the reader is slow: a collector (journald, docker) reads one JSON
// object per line.
#include "util/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace pushhook::util {
namespace {

TEST(LogTest, LongLinesFromManyThreadsReachAPipeWhole) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(::dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
  ::close(fds[1]);

  constexpr int kThreads = 4;
  constexpr int kLines = 20;
  const std::string long_value(20'000, 'x');  // about five times PIPE_BUF
  std::string received;
  std::thread reader([&] {
    char chunk[1024];
    for (;;) {
      const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n <= 0) return;
      received.append(chunk, static_cast<size_t>(n));
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // keeps the pipe full
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i) {
        Log(LogLevel::kError, "long", {{"thread", int64_t{t}}, {"value", long_value}});
      }
    });
  }
  for (std::thread& w : writers) w.join();
  ASSERT_EQ(::dup2(saved, STDERR_FILENO), STDERR_FILENO);  // closes the pipe's last writer
  ::close(saved);
  reader.join();
  ::close(fds[0]);

  size_t lines = 0;
  for (size_t start = 0; start < received.size();) {
    const size_t end = received.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "a cut last line";
    const std::string_view line(received.data() + start, end - start);
    EXPECT_TRUE(line.starts_with("{\"ts\":\"") && line.ends_with("\"}")) << "line " << lines;
    EXPECT_NE(line.find(long_value), std::string_view::npos) << "line " << lines;
    ++lines;
    start = end + 1;
  }
  EXPECT_EQ(lines, static_cast<size_t>(kThreads * kLines));
}

}  // namespace
}  // namespace pushhook::util
