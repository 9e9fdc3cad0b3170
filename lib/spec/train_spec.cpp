#include "spec/train_spec.h"

#include <cmath>

#include "core/error.h"

namespace nas::spec {

namespace {
void read_data(Obj d, TrainSpec& t) {
  t.data.format = d.one_of_or("format", {"idx", "cifar", "folder", "csv"}, t.data.format);
  if (t.data.format == "csv") {
    if (!d.has("label")) d.fail("label", "the label column (a header name, or #k for the k-th column, 0-based)", nullptr);
    t.data.label = d.string("label");
    t.data.header = d.boolean_or("header", t.data.header);
    t.data.skip_rows = d.integer_or("skip_rows", t.data.skip_rows, 0, 1000000);
    t.data.test_fraction = d.number_or("test_fraction", t.data.test_fraction, 0.0, 0.9);
    t.data.task = d.one_of_or("task", {"classification", "regression"}, t.data.task);
    // Features are standardized with the training rows' statistics: no pixel normalization.
    for (const char* k : {"mean", "std", "crop_padding", "hflip"})
      if (d.has(k)) d.fail(k, "nothing (format csv standardizes each feature with the training rows' statistics)", d.raw(k));
    t.data.mean = {0.0};
    t.data.std = {1.0};
    t.data.crop_padding = 0;
    t.data.hflip = false;
  }
  t.data.path = d.string_or("path", t.data.path);
  t.data.validation_images = d.integer_or("validation_images", t.data.validation_images, 0, 10000000);
  t.data.split_seed = static_cast<uint64_t>(d.integer_or("split_seed", static_cast<int64_t>(t.data.split_seed), 0, INT64_MAX));
  t.data.train_limit = d.integer_or("train_limit", t.data.train_limit, 0, 100000000);
  if (d.take("mean")) t.data.mean = d.numbers("mean", -1e3, 1e3);
  if (d.take("std")) t.data.std = d.numbers("std", 1e-6, 1e3);
  if (t.data.mean.size() != t.data.std.size())
    d.fail("std", "as many values as mean (" + std::to_string(t.data.mean.size()) + ")", json(t.data.std));
  t.data.crop_padding = static_cast<int>(d.integer_or("crop_padding", t.data.crop_padding, 0, 64));
  t.data.hflip = d.boolean_or("hflip", t.data.hflip);
  t.data.prefetch_batches = static_cast<int>(d.integer_or("prefetch_batches", t.data.prefetch_batches, 1, 64));
  d.finish();
}

void read_optimizer(Obj p, TrainSpec& t) {
  t.optimizer = p.one_of_or("type", {"sgd", "rmsprop"}, t.optimizer);
  t.lr = p.number("lr", 1e-8, 100.0);
  t.momentum = p.number_or("momentum", t.momentum, 0.0, 0.9999);
  t.nesterov = p.boolean_or("nesterov", t.optimizer == "sgd");
  if (t.nesterov && t.optimizer != "sgd") p.fail("nesterov", "false with rmsprop", true);
  t.rms_alpha = p.number_or("alpha", t.rms_alpha, 0.0, 0.9999);
  t.rms_eps = p.number_or("eps", t.rms_eps, 1e-12, 1.0);
  t.weight_decay = p.number_or("weight_decay", t.weight_decay, 0.0, 1.0);
  t.grad_clip = p.number_or("grad_clip", t.grad_clip, 0.0, 1e6);
  t.lr_scaling = p.one_of_or("lr_scaling", {"none", "linear", "sqrt"}, t.lr_scaling);
  t.reference_batch = static_cast<int>(p.integer_or("reference_batch", t.reference_batch, 1, 1 << 24));
  if (t.nesterov && t.momentum <= 0) p.fail("momentum", "a positive momentum when nesterov is true", t.momentum);
  p.finish();
}

void read_schedule(Obj s, TrainSpec& t) {
  t.schedule = s.one_of_or("type", {"cosine", "exponential", "constant"}, t.schedule);
  t.warmup_epochs = s.number_or("warmup_epochs", t.warmup_epochs, 0.0, 1e5);
  t.final_lr_fraction = s.number_or("final_lr_fraction", t.final_lr_fraction, 0.0, 1.0);
  t.decay_rate = s.number_or("decay_rate", t.decay_rate, 1e-6, 1.0);
  t.decay_epochs = s.number_or("decay_epochs", t.decay_epochs, 1e-6, 1e5);
  s.finish();
}

void read_sandwich(Obj s, TrainSpec& t) {
  t.sampling = s.one_of_or("sampling", {"sandwich", "uniform", "fixed"}, t.sampling);
  t.random_children = static_cast<int>(s.integer_or("random_children", t.random_children, 0, 64));
  t.child_policy =
      s.one_of_or("policy", {"uniform", "flops-stratified", "best-pareto", "worst-pareto"}, t.child_policy);
  t.candidates = static_cast<int>(s.integer_or("candidates", t.candidates, 2, 64));
  t.flops_bins = static_cast<int>(s.integer_or("flops_bins", t.flops_bins, 1, 100));
  s.finish();
}

void read_distillation(Obj s, TrainSpec& t) {
  t.distillation = s.boolean_or("enabled", t.distillation);
  t.distill_loss = s.one_of_or("loss", {"soft_ce", "kl"}, t.distill_loss);
  t.temperature = s.number_or("temperature", t.temperature, 0.01, 100.0);
  s.finish();
}
}  // namespace

TrainSpec train_spec_from_json(const json& j, const std::string& file) {
  Obj o(j, file, "");
  check_header(o, kTrainKind, kTrainVersion);
  TrainSpec t;
  t.source = file;
  read_data(o.object("data"), t);
  t.epochs = static_cast<int>(o.integer("epochs", 1, 100000));
  t.batch_size = static_cast<int>(o.integer("batch_size", 1, 65536));
  read_optimizer(o.object("optimizer"), t);
  if (o.take("schedule")) read_schedule(o.object("schedule"), t);
  if (o.take("sandwich")) read_sandwich(o.object("sandwich"), t);
  if (o.take("distillation")) read_distillation(o.object("distillation"), t);
  t.label_smoothing = o.number_or("label_smoothing", t.label_smoothing, 0.0, 0.999);
  t.dropout = o.number_or("dropout", t.dropout, 0.0, 0.999);
  t.drop_connect = o.number_or("drop_connect", t.drop_connect, 0.0, 0.999);
  t.zero_init_last_bn = o.boolean_or("zero_init_last_bn", t.zero_init_last_bn);
  t.sort_channels_every_epochs =
      static_cast<int>(o.integer_or("sort_channels_every_epochs", t.sort_channels_every_epochs, 0, 100000));
  t.validate_every_epochs = static_cast<int>(o.integer_or("validate_every_epochs", t.validate_every_epochs, 0, 100000));
  t.sync_bn = o.boolean_or("sync_bn", t.sync_bn);
  t.on_nonfinite_loss = o.one_of_or("on_nonfinite_loss", {"stop", "skip"}, t.on_nonfinite_loss);
  t.max_skipped_steps = o.integer_or("max_skipped_steps", t.max_skipped_steps, 1, 1000000);
  t.seed = static_cast<uint64_t>(o.integer_or("seed", static_cast<int64_t>(t.seed), 0, INT64_MAX));
  t.checkpoint_every_steps = o.integer_or("checkpoint_every_steps", t.checkpoint_every_steps, 1, INT64_MAX);
  t.log_every_steps = o.integer_or("log_every_steps", t.log_every_steps, 1, INT64_MAX);
  if (o.take("bn_calibration")) {
    Obj b = o.object("bn_calibration");
    t.calib_images = b.integer_or("images", t.calib_images, 1, 10000000);
    t.calib_batch_size = static_cast<int>(b.integer_or("batch_size", t.calib_batch_size, 1, 65536));
    b.finish();
  }
  o.finish();
  return t;
}

double scaled_lr(const TrainSpec& t) {
  double ratio = static_cast<double>(t.batch_size) / static_cast<double>(t.reference_batch);
  if (t.lr_scaling == "linear") return t.lr * ratio;
  if (t.lr_scaling == "sqrt") return t.lr * std::sqrt(ratio);
  return t.lr;
}

TrainSpec load_train_spec(const std::string& path) {
  return train_spec_from_json(load_document(path), path == "-" ? "<stdin>" : path);
}

json to_json(const TrainSpec& t) {
  json j;
  j["kind"] = kTrainKind;
  j["schema_version"] = kTrainVersion;
  j["data"] = {{"format", t.data.format},
               {"path", t.data.path},
               {"validation_images", t.data.validation_images},
               {"split_seed", t.data.split_seed},
               {"train_limit", t.data.train_limit},
               {"mean", t.data.mean},
               {"std", t.data.std},
               {"crop_padding", t.data.crop_padding},
               {"hflip", t.data.hflip},
               {"prefetch_batches", t.data.prefetch_batches}};
  if (t.data.format == "csv") {
    for (const char* k : {"mean", "std", "crop_padding", "hflip"}) j["data"].erase(k);
    j["data"]["label"] = t.data.label;
    j["data"]["header"] = t.data.header;
    j["data"]["skip_rows"] = t.data.skip_rows;
    j["data"]["test_fraction"] = t.data.test_fraction;
    j["data"]["task"] = t.data.task;
  }
  j["epochs"] = t.epochs;
  j["batch_size"] = t.batch_size;
  j["optimizer"] = {{"type", t.optimizer},       {"lr", t.lr},
                    {"momentum", t.momentum},    {"nesterov", t.nesterov},
                    {"alpha", t.rms_alpha},      {"eps", t.rms_eps},
                    {"weight_decay", t.weight_decay}, {"grad_clip", t.grad_clip},
                    {"lr_scaling", t.lr_scaling}, {"reference_batch", t.reference_batch}};
  j["schedule"] = {{"type", t.schedule},
                   {"warmup_epochs", t.warmup_epochs},
                   {"final_lr_fraction", t.final_lr_fraction},
                   {"decay_rate", t.decay_rate},
                   {"decay_epochs", t.decay_epochs}};
  j["sandwich"] = {{"sampling", t.sampling},      {"random_children", t.random_children},
                   {"policy", t.child_policy},    {"candidates", t.candidates},
                   {"flops_bins", t.flops_bins}};
  j["distillation"] = {{"enabled", t.distillation}, {"loss", t.distill_loss}, {"temperature", t.temperature}};
  j["label_smoothing"] = t.label_smoothing;
  j["dropout"] = t.dropout;
  j["drop_connect"] = t.drop_connect;
  j["zero_init_last_bn"] = t.zero_init_last_bn;
  j["sort_channels_every_epochs"] = t.sort_channels_every_epochs;
  j["validate_every_epochs"] = t.validate_every_epochs;
  j["sync_bn"] = t.sync_bn;
  j["on_nonfinite_loss"] = t.on_nonfinite_loss;
  j["max_skipped_steps"] = t.max_skipped_steps;
  j["seed"] = t.seed;
  j["checkpoint_every_steps"] = t.checkpoint_every_steps;
  j["log_every_steps"] = t.log_every_steps;
  j["bn_calibration"] = {{"images", t.calib_images}, {"batch_size", t.calib_batch_size}};
  return j;
}

}  // namespace nas::spec
