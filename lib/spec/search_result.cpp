#include "spec/search_result.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace nas::spec {

json to_json(const Candidate& c) {
  json j;
  j["index"] = c.index;
  j["arch"] = c.generic_arch.is_null() ? to_json(c.arch) : c.generic_arch;
  j["hash"] = c.hash;
  j["mflops"] = c.mflops;
  j["params"] = c.params;
  j["memory_mib"] = c.memory_mib;
  if (c.latency_ms >= 0) j["latency_ms"] = c.latency_ms;
  j["feasible"] = c.feasible;
  j["evaluated"] = c.evaluated;
  j["metrics"] = {{"val_acc", c.val_acc}, {"val_loss", c.val_loss}};
  j["estimator"] = c.estimator;
  if (!c.estimator_detail.empty()) j["estimator_detail"] = c.estimator_detail;
  j["origin"] = c.origin;
  j["eval_seconds"] = c.eval_seconds;
  if (!c.error.empty()) j["error"] = c.error;
  if (c.screened) {
    j["screened"] = true;
    j["predicted_acc"] = c.predicted_acc;
  }
  if (c.hypervolume >= 0) j["hypervolume"] = c.hypervolume;
  if (c.fidelity > 0) j["fidelity_epochs"] = c.fidelity;
  return j;
}

json to_json(const SearchIdentity& id) {
  json j;
  j["space"] = id.space;
  if (id.family != kDefaultFamily) j["family"] = id.family;
  if (!id.space_hash.empty()) j["space_hash"] = id.space_hash;
  j["supernet"] = id.supernet;
  j["strategy"] = id.strategy;
  j["seed"] = id.seed;
  j["budget"] = id.budget;
  j["time_budget"] = id.time_budget;
  j["strategy_options"] = id.strategy_options;
  j["constraints"] = {{"max_mflops", id.constraints.max_mflops},
                      {"max_params", id.constraints.max_params},
                      {"max_memory_mib", id.constraints.max_memory_mib},
                      {"max_latency_ms", id.constraints.max_latency_ms}};
  j["estimator_settings"] = {{"val_images", id.val_images}, {"calib_images", id.calib_images}};
  if (!id.evaluator.empty()) j["estimator_settings"]["evaluator"] = id.evaluator;
  if (!id.estimator_options.is_null()) j["estimator_settings"]["options"] = id.estimator_options;
  if (id.multi_objective()) j["multi_objective"] = {{"objectives", id.objectives}, {"hv_reference", id.hv_reference}};
  return j;
}

bool operator==(const SearchIdentity& a, const SearchIdentity& b) { return to_json(a) == to_json(b); }

std::vector<std::string> identity_differences(const SearchIdentity& stopped, const SearchIdentity& now) {
  std::vector<std::string> out;
  auto differ = [&out](bool same, const char* flags) {
    if (!same) out.emplace_back(flags);
  };
  const Constraints &a = stopped.constraints, &b = now.constraints;
  differ(stopped.space == now.space && stopped.family == now.family &&
             (stopped.space_hash.empty() || stopped.space_hash == now.space_hash),
         "the space (--space, --supernet)");
  differ(stopped.strategy == now.strategy, "--strategy");
  differ(stopped.seed == now.seed, "--seed");
  differ(stopped.budget == now.budget, "--budget");
  differ(stopped.time_budget == now.time_budget, "--time-budget");
  differ(stopped.supernet == now.supernet, "--supernet");
  differ(stopped.evaluator == now.evaluator, "--evaluator");
  differ(stopped.estimator_options.is_null() || stopped.estimator_options == now.estimator_options,
         "an estimator option (--estimator, --lf-*, --curve-*, --eval-timeout, --latency-table, --latency-model)");
  differ(a.max_mflops == b.max_mflops && a.max_params == b.max_params && a.max_memory_mib == b.max_memory_mib &&
             a.max_latency_ms == b.max_latency_ms,
         "a constraint (--max-mflops, --max-params, --max-memory-mib, --max-latency-ms)");
  differ(stopped.val_images == now.val_images && stopped.calib_images == now.calib_images,
         "--val-images or --calib-images");
  differ(stopped.objectives == now.objectives, "--objectives");
  differ(stopped.hv_reference == now.hv_reference, "--hv-reference");
  differ(stopped.strategy_options == now.strategy_options,
         "a strategy option (--population, --sample-size, --mutation-prob, --crossover, --prescreen, --bo-init, "
         "--tpe-*, --hb-*, --darts-*)");
  return out;
}

json to_json(const SearchResult& r) {
  json j = to_json(static_cast<const SearchIdentity&>(r));
  j["kind"] = kSearchKind;
  j["schema_version"] = kSearchVersion;
  if (!r.predictor.is_null()) j["predictor"] = r.predictor;
  if (!r.relaxation.is_null()) j["relaxation"] = r.relaxation;
  j["candidates"] = json::array();
  for (const auto& c : r.candidates) j["candidates"].push_back(to_json(c));
  j["best"] = r.best >= 0 ? to_json(r.candidates.at(r.best)) : json(nullptr);
  j["pareto"] = json::array();
  for (int i : r.pareto) {
    const auto& c = r.candidates.at(i);
    j["pareto"].push_back({{"index", i}, {"hash", c.hash}, {"mflops", c.mflops}, {"params", c.params},
                           {"val_acc", c.val_acc}});
  }
  for (const auto& [key, front] : std::vector<std::pair<std::string, const std::vector<int>*>>{
           {"pareto_params", &r.pareto_params}, {"pareto_memory", &r.pareto_memory}, {"pareto_latency", &r.pareto_latency}}) {
    j[key] = json::array();
    for (int i : *front) {
      const auto& c = r.candidates.at(i);
      j[key].push_back({{"index", i}, {"hash", c.hash}, {"mflops", c.mflops}, {"params", c.params},
                        {"val_acc", c.val_acc}});
    }
  }
  if (r.multi_objective()) {
    json front = json::array();
    for (int i : r.multi.front) front.push_back({{"index", i}, {"hash", r.candidates.at(i).hash}});
    j["multi_objective"]["hypervolume"] = r.multi.hypervolume;
    j["multi_objective"]["front"] = front;
  }
  j["timings"] = {{"total_seconds", r.total_seconds}, {"eval_seconds", r.eval_seconds},
                  {"cache_hits", r.cache_hits}};
  j["interrupted"] = r.interrupted;
  j["created"] = r.created;
  j["commit"] = r.commit;
  return j;
}

namespace {
Candidate candidate_from(Obj& c, const std::string& family, const ArchReader& read_arch) {
  Candidate k;
  k.index = static_cast<int>(c.integer("index", 0, INT32_MAX));
  std::string expected;
  if (family == kGenericFamily) {
    // Checked against its space by the tool that reads it (search::Encoding::from_json).
    k.generic_arch = c.raw("arch");
    if (!k.generic_arch.is_object() || !k.generic_arch.contains("choices"))
      c.fail("arch", "a generic child ({kind: nas.arch, space, choices})", k.generic_arch);
    expected = json_hash(k.generic_arch);
  } else {
    k.arch = read_arch(c.raw("arch"), c.where("arch"));
    NAS_CHECK(k.arch.family() == family, SpecError,
              c.where("arch") << ": expected an arch of family " << family << " (the search's), found one of family "
                              << k.arch.family());
    expected = arch_hash(k.arch);
  }
  k.hash = c.string("hash");
  if (k.hash != expected) c.fail("hash", "the hash of the arch (" + expected + ")", k.hash);
  k.mflops = c.number("mflops", 0, 1e12);
  k.params = c.integer("params", 0, INT64_MAX);
  k.memory_mib = c.number_or("memory_mib", 0, 0, 1e12);
  k.latency_ms = c.number_or("latency_ms", -1, 0, 1e12);
  k.feasible = c.boolean("feasible");
  k.evaluated = c.boolean("evaluated");
  k.estimator = c.text_or("estimator", "");
  // An accuracy, or R^2 for regression: at most 1, possibly negative; a zero-cost proxy's value
  // (estimator zero_cost_<proxy>) is any number.
  const bool proxy = k.estimator.rfind("zero_cost_", 0) == 0;
  Obj m = c.object("metrics");
  k.val_acc = m.number("val_acc", -1e300, proxy ? 1e300 : 1);
  // null: the loss was not finite (a diverged child); written so by nlohmann for NaN.
  k.val_loss = m.take("val_loss") ? m.number("val_loss", 0, 1e300) : std::numeric_limits<double>::quiet_NaN();
  m.finish();
  k.estimator_detail = c.text_or("estimator_detail", "");
  k.origin = c.text_or("origin", "");
  k.eval_seconds = c.number("eval_seconds", 0, 1e12);
  k.error = c.text_or("error", "");
  k.screened = c.boolean_or("screened", false);
  k.predicted_acc = c.number_or("predicted_acc", 0, -1e300, 1e300);
  k.hypervolume = c.number_or("hypervolume", -1, 0, 1e300);
  k.fidelity = static_cast<int>(c.integer_or("fidelity_epochs", 0, 1, 1000000));
  c.finish();
  return k;
}

// multi_objective: the identity's objectives and reference point, and the outcome.
void read_multi_objective(Obj m, SearchResult& r) {
  const json& names = m.raw("objectives");
  if (!names.is_array() || names.size() < 2 || names.size() > 3)
    m.fail("objectives", "a list of two or three objective names", names);
  for (const auto& n : names) {
    if (!n.is_string()) m.fail("objectives", "objective names", n);
    r.objectives.push_back(n.get<std::string>());
  }
  r.hv_reference = m.numbers("hv_reference", -1e300, 1e300);
  if (r.hv_reference.size() != r.objectives.size())
    m.fail("hv_reference", "one value per objective (" + std::to_string(r.objectives.size()) + ")",
           json(r.hv_reference));
  r.multi.hypervolume = m.number("hypervolume", 0, 1e300);
  for (auto& p : m.objects("front")) {
    r.multi.front.push_back(static_cast<int>(p.integer("index", 0, static_cast<int64_t>(r.candidates.size()) - 1)));
    p.string("hash");
    p.finish();
  }
  m.finish();
}

// The identity's fields but the multi-objective ones (read with the outcome they share an object with).
void read_identity(Obj& o, SearchIdentity& r) {
  r.space = o.string("space");
  r.family = o.string_or("family", kDefaultFamily);  // its candidates check it
  r.space_hash = o.string_or("space_hash", "");
  r.supernet = o.text_or("supernet", "");
  r.strategy = o.string("strategy");
  r.seed = static_cast<uint64_t>(o.integer("seed", 0, INT64_MAX));
  r.budget = o.integer("budget", 0, INT64_MAX);
  r.time_budget = o.number_or("time_budget", 0, 0, 1e12);
  if (o.take("strategy_options")) {
    const json& so = o.raw("strategy_options");
    if (!so.is_object()) o.fail("strategy_options", "an object", so);
    r.strategy_options = so;
  }
  {
    Obj c = o.object("constraints");
    r.constraints.max_mflops = c.number("max_mflops", 0, 1e12);
    r.constraints.max_params = c.integer("max_params", 0, INT64_MAX);
    r.constraints.max_memory_mib = c.number_or("max_memory_mib", 0, 0, 1e12);
    r.constraints.max_latency_ms = c.number_or("max_latency_ms", 0, 0, 1e12);
    c.finish();
  }
  Obj e = o.object("estimator_settings");
  r.val_images = e.integer("val_images", 0, INT64_MAX);
  r.calib_images = e.integer("calib_images", 0, INT64_MAX);
  r.evaluator = e.text_or("evaluator", "");
  if (e.take("options")) r.estimator_options = e.raw("options");
  e.finish();
}
}  // namespace

SearchResult search_result_from_json(const json& j, const std::string& file, const ArchReader& read_arch) {
  Obj o(j, file, "");
  check_header(o, kSearchKind, kSearchVersion);
  SearchResult r;
  read_identity(o, r);
  for (auto& c : o.objects("candidates")) r.candidates.push_back(candidate_from(c, r.family, read_arch));
  for (size_t i = 0; i < r.candidates.size(); ++i)
    if (r.candidates[i].index != static_cast<int>(i))
      o.fail("candidates", "candidates numbered 0, 1, 2, ... in order", r.candidates[i].index);
  if (o.take("best")) {
    Obj b = o.object("best");
    int idx = static_cast<int>(b.integer("index", 0, static_cast<int64_t>(r.candidates.size()) - 1));
    r.best = idx;
  }
  for (const char* key : {"pareto", "pareto_params", "pareto_memory", "pareto_latency"}) {
    if (std::string(key) != "pareto" && !o.take(key)) continue;  // older files have only "pareto"
    for (auto& p : o.objects(key)) {
      int idx = static_cast<int>(p.integer("index", 0, static_cast<int64_t>(r.candidates.size()) - 1));
      p.string("hash");
      p.number("mflops", 0, 1e12);
      p.integer("params", 0, INT64_MAX);
      p.number("val_acc", -1e300, 1e300);  // checked on the candidate itself
      p.finish();
      std::string k = key;
      (k == "pareto" ? r.pareto : k == "pareto_params" ? r.pareto_params : k == "pareto_memory" ? r.pareto_memory
                                                                                               : r.pareto_latency)
          .push_back(idx);
    }
  }
  if (o.take("multi_objective")) read_multi_objective(o.object("multi_objective"), r);
  {
    Obj t = o.object("timings");
    r.total_seconds = t.number("total_seconds", 0, 1e12);
    r.eval_seconds = t.number("eval_seconds", 0, 1e12);
    r.cache_hits = t.integer("cache_hits", 0, INT64_MAX);
    t.finish();
  }
  if (o.take("predictor")) r.predictor = o.raw("predictor");
  if (o.take("relaxation")) r.relaxation = o.raw("relaxation");
  r.interrupted = o.boolean_or("interrupted", false);
  r.created = o.text_or("created", "");
  r.commit = o.text_or("commit", "");
  o.finish();
  return r;
}

SearchResult load_search_result(const std::string& path, const ArchReader& read_arch) {
  return search_result_from_json(load_document(path), path == "-" ? "<stdin>" : path, read_arch);
}

std::vector<int> pareto_front(const std::vector<Candidate>& cands, const std::string& cost) {
  auto c_of = [&](int i) {
    const auto& c = cands[static_cast<size_t>(i)];
    return cost == "params" ? static_cast<double>(c.params)
           : cost == "memory_mib" ? c.memory_mib
           : cost == "latency_ms" ? c.latency_ms
                                  : c.mflops;
  };
  std::vector<int> idx;
  for (const auto& c : cands)
    if (c.feasible && c.evaluated && (cost != "latency_ms" || c.latency_ms >= 0)) idx.push_back(c.index);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) {
    if (c_of(a) != c_of(b)) return c_of(a) < c_of(b);
    if (cands[a].val_acc != cands[b].val_acc) return cands[a].val_acc > cands[b].val_acc;
    return a < b;
  });
  std::vector<int> front;
  double best_acc = -std::numeric_limits<double>::infinity();  // scores may be negative (R^2, proxies)
  for (int i : idx) {
    if (cands[i].val_acc > best_acc) {
      front.push_back(i);
      best_acc = cands[i].val_acc;
    }
  }
  return front;
}

}  // namespace nas::spec
