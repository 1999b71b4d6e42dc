# Plots uzram-bench --timeline data: memory used over the churn workload, pool vs malloc.
#   gnuplot -c scripts/plot-churn.gp OUT.png DATA [DATA...]     (OUT.svg for SVG)
# One panel per DATA file (e.g. the lognormal model and the page corpus). Each file has a
# header row "op phase payload <backend>..." and a second block with the phase starts.
if (ARGC < 2) { print "usage: gnuplot -c plot-churn.gp OUT.png DATA [DATA...]"; exit status 1 }
out = ARG1
n = ARGC - 1
panel_h = 460
if (out[strlen(out)-3:] eq ".svg") {
  set terminal svg size 1100, panel_h * n dynamic font "Helvetica,13"
} else {
  set terminal pngcairo size 1100, panel_h * n font "Helvetica,11"
}
set output out
set datafile missing "?"
set key at graph 0.70, 0.38 vertical box opaque samplen 3
set termoption noenhanced
set grid ytics lc rgb "#dddddd"
set xlabel "operations (alloc + free), thousands"
set ylabel "memory used (MiB)"
set yrange [0:*]
set lmargin 10
set multiplot layout n, 1

# Column colours by backend name; anything unknown gets grey.
colour(name) = name eq "uzram" ? "#1f5fbf" : name eq "glibc" ? "#d62728" : \
               name eq "jemalloc" ? "#2ca02c" : name eq "mimalloc" ? "#ff7f0e" : "#888888"
width(name) = name eq "uzram" ? 3 : 1.5

do for [k = 2:ARGC] {
  file = value("ARG".k)
  title = system("sed -n 's/^# title: //p' '" . file . "' | head -1")
  header = system("awk '!/^#/ { print; exit }' '" . file . "'")
  ncols = words(header)
  ymax = 0
  do for [i = 3:ncols] {
    stats file index 0 using i nooutput
    if (STATS_max > ymax) { ymax = STATS_max }
  }
  set yrange [0:ymax * 1.22]
  set title title . "\n(uzram: frames x 4 KiB + metadata; malloc: RSS growth; one run)"
  # Phase names centred over their stretch; compactions (zero width) along their drop.
  plot file index 1 using ($2 > $1 ? ($1 + $2) / 2000 : 1/0):(ymax * 1.14):3 with labels \
         font ",10" tc rgb "#555555" notitle, \
       file index 1 using ($2 == $1 ? $1 / 1000 : 1/0):(ymax * 0.55):("compact()") with labels \
         rotate by 90 offset -1, 0 font ",10" tc rgb "#555555" notitle, \
       file index 1 using ($1/1000):(0):(0):(ymax * 1.22) with vectors nohead \
         dt 3 lc rgb "#aaaaaa" notitle, \
       file index 0 using ($1/1000):3 with lines dt 2 lw 2 lc rgb "black" title "live payload", \
       for [i = 4:ncols] file index 0 using ($1/1000):i with lines \
         lw width(word(header, i)) lc rgb colour(word(header, i)) title word(header, i)
}
unset multiplot
