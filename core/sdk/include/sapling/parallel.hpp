// A small work pool for independent items (structure files): workers take the next index until all are done.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace sapling {

// Calls work(i) for every i in [begin, end) on `threads` threads (the
// calling thread included). work() must not throw: record errors per item.
// `stop`, when given and set by a worker, makes the others take no new item.
template <typename Work>
void parallel_for(size_t begin, size_t end, int threads, Work work, const std::atomic<bool>* stop = nullptr) {
  std::atomic<size_t> next{begin};
  auto loop = [&] {
    for (size_t i; !(stop && *stop) && (i = next++) < end;) work(i);
  };
  const size_t items = end > begin ? end - begin : 0;
  const int workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(1, threads)), std::max<size_t>(1, items)));
  std::vector<std::thread> pool;
  for (int t = 1; t < workers; ++t) pool.emplace_back(loop);
  loop();
  for (auto& t : pool) t.join();
}

}  // namespace sapling
