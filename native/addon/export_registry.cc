#include "addon/export_registry.h"

#include <atomic>

namespace dmabuf::addon {
namespace {

struct AllRegistries {
  std::mutex mu;
  std::vector<ExportRegistryBase*> list;
};
// Never destroyed: registries are namespace-scope objects of the binding files,
// and teardown order across translation units is unspecified.
AllRegistries& all() {
  static auto* a = new AllRegistries;
  return *a;
}

}  // namespace

ExportRegistryBase::ExportRegistryBase() {
  std::lock_guard<std::mutex> g(all().mu);
  all().list.push_back(this);
}

uint64_t ExportRegistryBase::NextId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void ExportRegistryBase::EnvGone(const void* owner, bool everything) {
  std::vector<ExportRegistryBase*> list;
  {
    std::lock_guard<std::mutex> g(all().mu);
    list = all().list;
  }
  for (ExportRegistryBase* r : list) r->Orphan(owner, everything);
}

}  // namespace dmabuf::addon
