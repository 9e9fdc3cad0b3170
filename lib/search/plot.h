#pragma once
// A PNG of a search's accuracy-vs-cost fronts, drawn by gnuplot (Debian's gnuplot-nox): every
// evaluated candidate, the front and the best, against MFLOPs and against params. Torch-free.
#include <string>

#include "spec/search_result.h"

namespace nas::search {

// Writes `png` atomically. IoError when gnuplot is missing or fails.
void write_front_plot(const spec::SearchResult& r, const std::string& png);

}  // namespace nas::search
