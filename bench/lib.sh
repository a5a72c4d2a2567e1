# bench/lib.sh - helpers the benchmark scripts share (bash).  Sourced, not
# run; the script sets P (the paramd program) first.
#   now            seconds since the epoch, with nanoseconds
#   med            the median of the numbers on stdin, one per line
#   frontier ADDR  the largest applied clock of table 1 over the servers of
#                  the cluster at ADDR (paramd stats), or nothing
now() { date +%s.%N; }
med() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
frontier() {
  "$P" stats --coordinator "$1" 2>/dev/null |
    awk '/^  table 1 / { for (i = 1; i < NF; i++) if ($i == "frontier" && $(i + 1) > m) m = $(i + 1) }
         END { if (m != "") print m }'
}
