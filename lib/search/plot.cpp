#include "search/plot.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "core/io.h"

namespace nas::search {
namespace {
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

void write_front_plot(const spec::SearchResult& r, const std::string& png) {
  NAS_CHECK(png.find_first_of("'\"") == std::string::npos, UsageError,
            png << ": expected a plot path without quote characters");
  NAS_CHECK(std::system("command -v gnuplot > /dev/null 2>&1") == 0, IoError,
            png << ": cannot plot: gnuplot is not installed (apt-get install gnuplot-nox)");
  // Data blocks: 0 candidates, 1 MFLOPs front, 2 params front, 3 best.
  std::ostringstream data;
  for (const auto& c : r.candidates)
    if (c.evaluated) data << c.mflops << " " << c.params / 1e3 << " " << 100 * c.val_acc << "\n";
  data << "\n\n";
  for (int i : r.pareto) data << r.candidates[i].mflops << " 0 " << 100 * r.candidates[i].val_acc << "\n";
  data << "\n\n";
  for (int i : r.pareto_params) data << "0 " << r.candidates[i].params / 1e3 << " " << 100 * r.candidates[i].val_acc << "\n";
  data << "\n\n";
  if (r.best >= 0) {
    const auto& b = r.candidates[r.best];
    data << b.mflops << " " << b.params / 1e3 << " " << 100 * b.val_acc << "\n";
  } else {
    data << "NaN NaN NaN\n";
  }
  data << "\n\n";
  // Block 4: the hypervolume after each evaluation (multi-objective searches).
  int64_t evals = 0;
  for (const auto& c : r.candidates)
    if (c.evaluated && c.hypervolume >= 0) data << ++evals << " " << c.hypervolume << " 0\n";
  if (evals == 0) data << "NaN NaN NaN\n";
  const bool hv = r.multi_objective();
  const std::string dat = png + ".dat.tmp";
  write_file_atomic(dat, data.str());
  write_via_temp(png, [&](const std::string& tmp) {
    std::ostringstream gp;
    gp << "set output '" << tmp << "'; set multiplot layout 1," << (hv ? 3 : 2) << " title '" << r.strategy << " search of " << r.space << "';"
       << " set ylabel 'validation accuracy (%)'; set grid; set key bottom right;"
       << " set xlabel 'MFLOPs'; plot '" << dat << "' index 0 using 1:3 with points pt 7 ps 0.5 lc rgb '#999999'"
       << " title 'candidates', '' index 1 using 1:3 with linespoints pt 7 lc rgb '#1f77b4' title 'front',"
       << " '' index 3 using 1:3 with points pt 5 ps 1.5 lc rgb '#d62728' title 'best';"
       << " set xlabel 'params (K)'; plot '" << dat << "' index 0 using 2:3 with points pt 7 ps 0.5 lc rgb '#999999'"
       << " title 'candidates', '' index 2 using 2:3 with linespoints pt 7 lc rgb '#2ca02c' title 'front',"
       << " '' index 3 using 2:3 with points pt 5 ps 1.5 lc rgb '#d62728' title 'best';";
    if (hv) {
      std::string names;
      for (const auto& n : r.objectives) names += (names.empty() ? "" : " x ") + n;
      gp << " set xlabel 'evaluations'; set ylabel 'hypervolume (" << names << ")'; set key top left;"
         << " plot '" << dat << "' index 4 using 1:2 with steps lc rgb '#9467bd' title 'front';";
    }
    gp << " unset multiplot";
    // pngcairo is missing from gnuplot-nox: fall back to the plain png terminal.
    int rc = 1;
    const std::string size = hv ? " size 1800,500" : " size 1200,500";
    for (const std::string& term : {"pngcairo" + size, "png" + size}) {
      std::string cmd = "gnuplot -e " + shell_quote("set terminal " + term + "; " + gp.str()) +
                        " > /dev/null 2>&1";
      rc = std::system(cmd.c_str());
      if (rc == 0) break;
    }
    std::remove(dat.c_str());
    NAS_CHECK(rc == 0, IoError, png << ": gnuplot failed to draw the plot");
  });
}

}  // namespace nas::search
