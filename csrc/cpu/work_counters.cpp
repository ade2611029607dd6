#include "work_counters.h"

namespace sdd {
namespace cpu {

WorkCounters& work_counters() {
  static WorkCounters counters;
  return counters;
}

std::atomic<bool>& plain_lloyd() {
  static std::atomic<bool> plain{false};
  return plain;
}

}  // namespace cpu
}  // namespace sdd
