#include "families/latency_ops.h"

#include <sstream>

namespace nas::families {

std::string LatencyOp::key() const {
  std::ostringstream k;
  k << kind << "/in" << in << "/out" << out;
  if (kind == "block")
    k << "/e" << expand << (has_expand ? "" : "n") << "/k" << kernel << "/s" << stride << (residual ? "/res" : "")
      << (se ? "/se" : "");
  if (kind == "stem") k << "/k" << kernel << "/s" << stride;
  if (kind == "head") k << "/c" << classes;
  k << "/r" << res << "/" << act;
  return k.str();
}

}  // namespace nas::families
