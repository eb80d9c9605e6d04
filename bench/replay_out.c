/*
 * replay_out.c - the replay scenario's outputs: the table on stdout, JSON
 * and CSV (one object/row per point, the same fields), and replay.png: hit
 * ratio against capacity (fraction of the working set) for tierkv hot+cold
 * and hot only, with the trace's ideal and the exact LRU of the same
 * capacity as lines, drawn by gnuplot like bench/plots.c (the data,
 * replay-split.dat and replay-hot.dat, and the script stay beside it:
 * `gnuplot DIR/replay.gp` redraws it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench/replay.h"
#include "tierkv.h"

void replay_table_header(void)
{
	printf("%6s %5s %9s %9s %8s %8s %8s %8s %8s %6s %6s %6s %6s %9s %8s %11s %9s %9s %6s "
	       "%5s\n",
	       "cap", "hot", "hot MiB", "cold MiB", "hit", "hot_hit", "cold_hit", "ideal", "lru",
	       "held", "lru_hd", "both", "orphan", "saved", "req/s", "layer-tok/s", "open p50",
	       "open p99", "wrong", "err");
}

void replay_table_row(const replay_point *p)
{
	printf("%6.3g %5.2f %9.1f %9.1f %8.4f %8.4f %8.4f %8.4f %8.4f %6.3f %6.3f %6.3f %6.3f "
	       "%8.2f%% %8.0f %11.0f %7.1fus %7.1fus %6llu %5llu%s\n",
	       p->capacity_frac, p->hot_frac, (double)p->hot_bytes / 1048576.0,
	       (double)p->cold_bytes / 1048576.0, p->hit_ratio, p->hot_hit_ratio,
	       p->cold_hit_ratio, p->ideal_hit_ratio, p->lru_hit_ratio, p->held_mean,
	       p->lru_held_mean, p->both_mean, p->orphan_mean,
	       100.0 * (double)p->prefill_tokens_saved / (double)(p->prompt_tokens ? p->prompt_tokens : 1),
	       p->requests_per_s, p->layer_tokens_per_s, p->open_p50_ns / 1e3,
	       p->open_p99_ns / 1e3, (unsigned long long)p->wrong_bytes,
	       (unsigned long long)p->errors, p->restart_at >= 0 ? "  (restarted)" : "");
	if (p->nodes > 1) {
		printf("       ^ %u nodes sharing the cluster (writing %s), each with the sizes above: "
		       "shared_hit %.4f; per node (hit / of which shared):",
		       p->nodes, p->shared_write == TKV_SHARED_WRITE_THROUGH ? "through" : "on drop",
		       p->shared_hit_ratio);
		for (uint32_t i = 0; i < p->nodes && i < REPLAY_MAX_NODES; i++)
			printf(" %.4f/%.4f", p->node_hit_ratio[i], p->node_shared_hit_ratio[i]);
		printf("; one node with the whole trace: %.4f (%+.4f); corrupt %llu, writes not "
		       "stored %llu\n",
		       p->one_node_hit_ratio, p->hit_ratio - p->one_node_hit_ratio,
		       (unsigned long long)p->shared_corrupt,
		       (unsigned long long)p->shared_write_failures);
	}
}

#define FIELDS(X)                                                                            \
	X(capacity_frac, "%.4f", p->capacity_frac)                                             \
	X(hot_frac, "%.4f", p->hot_frac)                                                       \
	X(capacity_blocks, "%llu", (unsigned long long)p->capacity_blocks)                     \
	X(hot_bytes, "%llu", (unsigned long long)p->hot_bytes)                                 \
	X(cold_bytes, "%llu", (unsigned long long)p->cold_bytes)                               \
	X(hit_ratio, "%.6f", p->hit_ratio)                                                     \
	X(hot_hit_ratio, "%.6f", p->hot_hit_ratio)                                             \
	X(cold_hit_ratio, "%.6f", p->cold_hit_ratio)                                           \
	X(ideal_hit_ratio, "%.6f", p->ideal_hit_ratio)                                         \
	X(lru_hit_ratio, "%.6f", p->lru_hit_ratio)                                             \
	X(lookup_blocks, "%llu", (unsigned long long)p->lookup_blocks)                         \
	X(hit_blocks_hot, "%llu", (unsigned long long)p->hit_hot)                              \
	X(hit_blocks_cold, "%llu", (unsigned long long)p->hit_cold)                            \
	X(prefill_tokens_saved, "%llu", (unsigned long long)p->prefill_tokens_saved)           \
	X(prompt_tokens, "%llu", (unsigned long long)p->prompt_tokens)                         \
	X(wrong_bytes, "%llu", (unsigned long long)p->wrong_bytes)                             \
	X(checked_bytes, "%llu", (unsigned long long)p->checked_bytes)                         \
	X(errors, "%llu", (unsigned long long)p->errors)                                       \
	X(dropped_blocks, "%llu", (unsigned long long)p->dropped)                              \
	X(recovered_blocks, "%llu", (unsigned long long)p->recovered)                          \
	X(dropped_hot, "%llu", (unsigned long long)p->dropped_hot)                             \
	X(dropped_cold, "%llu", (unsigned long long)p->dropped_cold)                           \
	X(evicted_blocks, "%llu", (unsigned long long)p->evicted_blocks)                       \
	X(promoted_layer_blocks, "%llu", (unsigned long long)p->promoted_blocks)               \
	X(enospc_events, "%llu", (unsigned long long)p->enospc)                                \
	X(io_errors_enospc, "%llu", (unsigned long long)p->io_enospc)                          \
	X(hot_space_waits, "%llu", (unsigned long long)p->space_waits)                         \
	X(hot_space_wait_ms, "%.3f", (double)p->space_wait_ns / 1e6)                           \
	X(requests, "%llu", (unsigned long long)p->requests)                                   \
	X(threads, "%u", p->threads)                                                           \
	X(seconds, "%.4f", p->seconds)                                                         \
	X(requests_per_s, "%.1f", p->requests_per_s)                                           \
	X(layer_tokens_per_s, "%.1f", p->layer_tokens_per_s)                                   \
	X(open_p50_ns, "%.0f", p->open_p50_ns)                                                 \
	X(open_p99_ns, "%.0f", p->open_p99_ns)                                                 \
	X(restart_at, "%.4f", p->restart_at)                                                   \
	X(nodes, "%u", p->nodes)                                                               \
	X(shared_write_through, "%d", p->nodes > 1 && p->shared_write == TKV_SHARED_WRITE_THROUGH) \
	X(shared_hit_ratio, "%.6f", p->shared_hit_ratio)                                       \
	X(hit_blocks_shared, "%llu", (unsigned long long)p->hit_shared)                        \
	X(shared_corrupt, "%llu", (unsigned long long)p->shared_corrupt)                       \
	X(shared_writes_not_stored, "%llu", (unsigned long long)p->shared_write_failures)      \
	X(one_node_hit_ratio, "%.6f", p->one_node_hit_ratio)                                   \
	X(node0_hit_ratio, "%.6f", p->nodes > 1 ? p->node_hit_ratio[0] : p->hit_ratio)         \
	X(node1_hit_ratio, "%.6f", p->nodes > 1 ? p->node_hit_ratio[1] : -1.0) \
	X(held_mean, "%.4f", p->held_mean)                                                     \
	X(held_max, "%.4f", p->held_max)                                                       \
	X(both_mean, "%.4f", p->both_mean)                                                     \
	X(lru_held_mean, "%.4f", p->lru_held_mean)                                             \
	X(orphan_mean, "%.4f", p->orphan_mean)

int replay_write_json(const replay_point *pts, size_t n, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "tierkv-bench replay: cannot write %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fputs("[\n", f);
	for (size_t i = 0; i < n; i++) {
		const replay_point *p = &pts[i];
		fprintf(f, "  {\"scenario\": \"replay\", \"trace\": \"%s\", \"geometry\": \"%s\"",
			p->trace, p->geometry);
#define JSON(name, fmt, val) fprintf(f, ", \"" #name "\": " fmt, val);
		FIELDS(JSON)
#undef JSON
		fprintf(f, "}%s\n", i + 1 < n ? "," : "");
	}
	fputs("]\n", f);
	return fclose(f) ? -errno : 0;
}

int replay_write_csv(const replay_point *pts, size_t n, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "tierkv-bench replay: cannot write %s: %s\n", path, strerror(errno));
		return -errno;
	}
	fputs("scenario,trace,geometry", f);
#define HEAD(name, fmt, val) fputs("," #name, f);
	FIELDS(HEAD)
#undef HEAD
	fputc('\n', f);
	for (size_t i = 0; i < n; i++) {
		const replay_point *p = &pts[i];
		fprintf(f, "replay,%s,%s", p->trace, p->geometry);
#define CSV(name, fmt, val) fprintf(f, "," fmt, val);
		FIELDS(CSV)
#undef CSV
		fputc('\n', f);
	}
	return fclose(f) ? -errno : 0;
}

/* 0: hot+cold, 1: hot only, 2: several nodes sharing a cluster */
static int point_kind(const replay_point *p)
{
	return p->nodes > 1 ? 2 + (p->shared_write == TKV_SHARED_WRITE_THROUGH) : p->hot_frac >= 1.0;
}

int replay_plot(const replay_point *pts, size_t n, const char *dir)
{
	char path[4200];
	/* replay-split.dat: hot+cold runs, replay-hot.dat: hot only;
	 * columns capacity_frac hit_ratio ideal lru */
	static const char *const dat[4] = {"replay-split.dat", "replay-hot.dat",
					   "replay-shared-drop.dat", "replay-shared-through.dat"};
	for (int kind = 0; kind < 4; kind++) {
		snprintf(path, sizeof(path), "%s/%s", dir, dat[kind]);
		FILE *f = fopen(path, "w");
		if (!f)
			return -errno;
		fprintf(f, "# %s: capacity_frac hit_ratio ideal lru\n",
			kind == 1 ? "hot only" : kind >= 2 ? "nodes sharing a cluster" : "hot+cold");
		for (size_t i = 0; i < n; i++)
			if (point_kind(&pts[i]) == kind)
				fprintf(f, "%.4f %.6f %.6f %.6f\n", pts[i].capacity_frac,
					pts[i].hit_ratio, pts[i].ideal_hit_ratio, pts[i].lru_hit_ratio);
		if (fclose(f))
			return -errno;
	}
	snprintf(path, sizeof(path), "%s/replay.gp", dir);
	FILE *g = fopen(path, "w");
	if (!g)
		return -errno;
	double hf = 0;
	uint32_t nodes = 0;
	for (size_t i = 0; i < n; i++) {
		if (pts[i].hot_frac < 1.0)
			hf = pts[i].hot_frac;
		if (pts[i].nodes > 1)
			nodes = pts[i].nodes;
	}
	bool have[4] = {false, false, false, false};
	for (size_t i = 0; i < n; i++)
		have[point_kind(&pts[i])] = true;
	fprintf(g,
		"set terminal pngcairo size 900,560 noenhanced\n"
		"set output '%s/replay.png'\n"
		"set title 'tierkv-bench replay %s: prefix-cache hit ratio vs capacity'\n"
		"set xlabel 'capacity (fraction of the working set)'\n"
		"set ylabel 'hit ratio (prompt blocks)'\nset grid\nset key top left\n"
		"set yrange [0:*]\nset logscale x 2\nplot ",
		dir, n ? pts[0].trace : "");
	const char *sep = "";
	for (int i = 0; i < 4; i++) {
		if (!have[i])
			continue;
		char title[96];
		if (i >= 2)
			snprintf(title, sizeof(title), "tierkv, %u nodes sharing a cluster, write %s",
				 nodes, i == 3 ? "through" : "on drop");
		else
			snprintf(title, sizeof(title),
				 i ? "tierkv, hot only" : "tierkv, hot+cold (hot %.2f)", hf);
		fprintf(g,
			"%s'%s/%s' using 1:2 with linespoints lw 2 pt %d title '%s', "
			"'' using 1:4 with linespoints dt 2 lw 2 lc rgb 'gray40' %s, "
			"'' using 1:3 with lines dt 3 lw 2 lc rgb 'black' %s",
			sep, dir, dat[i], i >= 2 ? 7 + 2 * i : i ? 5 : 7, title,
			sep[0] ? "notitle" : "title 'exact LRU, same blocks'",
			sep[0] ? "notitle" : "title 'ideal (unlimited cache)'");
		sep = ", ";
	}
	fputs("\n", g);
	if (fclose(g))
		return -errno;
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "gnuplot '%s'", path);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "tierkv-bench replay: gnuplot failed on %s\n", path);
		return -EIO;
	}
	return 0;
}
