/*
 * cold_kill.c - crash consistency of the cold tier under SIGKILL.
 *
 * A child process runs a runtime with a tiny hot tier, so it evicts all the
 * time, and keeps storing pattern data into several sequences. After every
 * unit it syncs, it sends the parent tkv_stats.evicted_blocks (the number
 * of records the runtime has called durable) and the names of the records
 * that became durable. The parent SIGKILLs the child in the middle of that
 * (the child never pauses), then reopens the directory
 *   (a) with the storage layer alone: every record must read back
 *       byte-identical or be refused as corrupt (only a write in flight at
 *       the kill may be torn); every record named durable must read back,
 *       and at least as many as the counter said (no sequence was closed,
 *       so none was deleted);
 *   (b) with a whole runtime: each re-opened sequence must hold exactly the
 *       contiguous prefix of good records and read it back byte-identical.
 * Three tests kill at different depths; the last one kills a second child
 * that resumed the recovered sequences, so recovery of a recovered store is
 * covered too.
 *
 * What a SIGKILL cannot detect: the kernel keeps a killed process's page
 * cache, so every write that reached the kernel survives the kill whether
 * or not it was fdatasync'ed. A cold tier that never calls fdatasync passes
 * these tests (checked: with the sync batches' fdatasyncs removed from
 * tiers/cold_write.c all three pass). That step is covered by cold_faults.c
 * instead: fdatasync_failure_fails_the_batch and
 * sync_failure_only_fails_its_segment fail the fdatasync at the I/O seam and
 * require exactly that batch's records to fail, so a tier that skips the
 * fdatasync (the injected failure never happens) fails there. Neither
 * simulates a power cut: that the fdatasync(2) call in tiers/cold_io.c
 * (raw_sync) reaches the device is checked by no test.
 *
 * The child is this same test binary, re-executed (fork, then exec of
 * /proc/self/exe) with TKV_COLD_KILL_CHILD in its environment; a constructor
 * sees it and runs the child's loop instead of Criterion. A plain fork is
 * not enough: Criterion's test process already runs two threads (its IPC),
 * and ThreadSanitizer kills a forked child of a multi-threaded process as
 * soon as it starts a thread, which a runtime does.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "tests/cold_runtime.h"
#include "tests/kv_pattern.h"
#include "tiers/cold.h"
#include "tiers/evictor.h"
#include "tierkv.h"

enum { NSEQ = 4 };
/* Room for ~1800 records: far more than any test writes before its kill,
 * so the child never stalls on a full cold tier. */
#define COLD_BYTES (64ull << 20)
/* The evictor keeps at most this many record writes in flight (the cold
 * tier's default queue depth): only those can be torn by the kill. */
#define MAX_IN_FLIGHT 32
/* Not 0..3: a record filed under the wrong id would then be caught. */
#define SEQ_ID(i) (0x7e57c0de00ull + (uint64_t)(i))
/* Blocks per sequence tracked; COLD_BYTES holds fewer records in all. */
#define MAX_BLOCKS 2048

static char dir[64];
static pid_t child_pid; /* a child still running, for the cleanup */

static void make_dir(void)
{
	strcpy(dir, "/tmp/tierkv-kill-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void remove_dir(void)
{
	if (child_pid > 0) { /* a failed assertion left it running */
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = 0;
	}
	if (dir[0])
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static tkv_config kill_config(void)
{
	tkv_config c = cold_runtime_config(dir, COLD_BYTES);
	/* evict in bursts of ~10 units: many record writes in flight at once */
	c.hot_high_pct = 80;
	c.hot_low_pct = 25;
	return c;
}

/* ---- the child ----------------------------------------------------------- */

/* Messages to the parent, 24 bytes each, so each write to the pipe is
 * atomic. After every synced unit: one PROGRESS, then one DURABLE for each
 * record that became durable since the last look. */
enum { PROGRESS = 1, DURABLE = 2 };
typedef struct report {
	uint32_t kind;
	uint32_t seq; /* index of the sequence (just synced / of the record) */
	uint64_t a;   /* PROGRESS: tkv_stats.evicted_blocks; DURABLE: block */
	uint64_t b;   /* PROGRESS: units of that sequence stored and synced */
} report;

/* Exit codes of a child that stopped on its own (the parent says which). */
enum { CHILD_OPEN = 10, CHILD_SEQ, CHILD_STORE, CHILD_SYNC, CHILD_STATS, CHILD_PIPE, CHILD_FULL };

/* K and V of the unit in progress, one buffer per layer: the stores of a
 * unit are all in flight together and the buffers must stay valid until the
 * sync says they completed. */
static unsigned char child_k[LAYERS][BT * ROW], child_v[LAYERS][BT * ROW];

/* Stores one unit (all layers) of sequence i at unit index u. */
static int child_store_unit(tkv_runtime *rt, uint32_t i, uint64_t u)
{
	uint64_t s = SEQ_ID(i), p = u * BT;
	for (uint32_t l = 0; l < LAYERS; l++) {
		int rc, tries = 0;
		kvp_fill(child_k[l], s, l, p, BT, ROW, 0);
		kvp_fill(child_v[l], s, l, p, BT, ROW, 1);
		/* A store gives up with -ENOSPC after a bounded wait for the
		 * evictor, which can be slow under sanitizers; nothing was stored
		 * then, so the same store is retried, a bounded number of times
		 * (a cold tier that really filled up must not hang the test). */
		while ((rc = tkv_store(rt, s, l, p, BT, child_k[l], child_v[l], 0, NULL)) == -ENOSPC &&
		       ++tries < 100)
			usleep(1000);
		if (rc)
			return rc == -ENOSPC ? CHILD_FULL : CHILD_STORE;
	}
	return 0;
}

static void send_report(int wfd, report r)
{
	if (write(wfd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(CHILD_PIPE);
}

/* Which records are durable, by name: the count alone cannot tell the
 * parent that one durable record went missing if another, in flight at
 * the kill, made it to disk. The storage layer makes a record visible to
 * lookups only once it is written and fdatasync'ed (cold.h), so a lookup
 * that finds it is as good as the runtime's word. lo[] skips the blocks
 * already known, so each look covers the few units between the oldest
 * still hot and the newest. */
static bool child_known[NSEQ][MAX_BLOCKS];
static uint64_t child_lo[NSEQ];

static void report_durable(tkv_runtime *rt, int wfd, const uint64_t *units)
{
	for (uint32_t i = 0; i < NSEQ; i++) {
		for (uint64_t b = child_lo[i]; b < units[i]; b++)
			if (!child_known[i][b] && tkv__cold_lookup(rt->ev->cold, SEQ_ID(i), b, NULL)) {
				child_known[i][b] = true;
				send_report(wfd, (report){DURABLE, i, b, 0});
			}
		while (child_lo[i] < units[i] && child_known[i][child_lo[i]])
			child_lo[i]++;
	}
}

/* Never returns: stores round-robin into NSEQ sequences until killed. With
 * `resume`, the sequences already have records (a previous child's) and go
 * on from the prefix the runtime restored. */
static void __attribute__((noreturn)) child_main(int wfd, bool resume)
{
	tkv_config c = kill_config();
	tkv_runtime *rt = NULL;
	uint64_t units[NSEQ];
	if (tkv_open(&c, &rt))
		_exit(CHILD_OPEN);
	for (uint32_t i = 0; i < NSEQ; i++) {
		uint64_t tokens = 0;
		if (tkv_seq_open(rt, SEQ_ID(i)) || tkv_seq_info(rt, SEQ_ID(i), NULL, &tokens))
			_exit(CHILD_SEQ);
		if (!resume && tokens)
			_exit(CHILD_SEQ);
		/* the restored prefix was checked by the parent already */
		units[i] = child_lo[i] = tokens / BT;
	}
	for (;;) {
		for (uint32_t i = 0; i < NSEQ; i++) {
			if (units[i] >= MAX_BLOCKS)
				_exit(CHILD_FULL);
			int rc = child_store_unit(rt, i, units[i]);
			if (rc)
				_exit(rc);
			if (tkv_seq_sync(rt, SEQ_ID(i)))
				_exit(CHILD_SYNC);
			units[i]++;
			tkv_stats st = {.struct_size = sizeof(st)};
			if (tkv_stats_get(rt, &st))
				_exit(CHILD_STATS);
			send_report(wfd, (report){PROGRESS, i, st.evicted_blocks, units[i]});
			report_durable(rt, wfd, units);
		}
	}
}

#define CHILD_ENV "TKV_COLD_KILL_CHILD"

/* In the re-executed child, before Criterion's main: "<fd>:<resume>:<dir>". */
static void __attribute__((constructor)) child_entry(void)
{
	const char *e = getenv(CHILD_ENV);
	int fd, resume, off = 0;
	if (!e)
		return;
	/* never outlive the test, whatever happens to it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
		_exit(CHILD_OPEN);
	if (sscanf(e, "%d:%d:%n", &fd, &resume, &off) != 2 || !off ||
	    strlen(e + off) >= sizeof(dir))
		_exit(CHILD_OPEN);
	strcpy(dir, e + off);
	child_main(fd, resume != 0);
}

/* ---- the parent ---------------------------------------------------------- */

/* Starts the child with the pipe's write end `wfd` (inherited across exec).
 * Everything the child needs is prepared before fork, so between fork and
 * exec it calls only async-signal-safe functions. */
static pid_t spawn_child(int wfd, bool resume)
{
	extern char **environ;
	static char var[sizeof(CHILD_ENV) + 32 + sizeof(dir)];
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 2, sizeof(*envp));
	cr_assert_not_null(envp);
	for (size_t i = 0, j = 0; i < n; i++)
		if (strncmp(environ[i], CHILD_ENV "=", sizeof(CHILD_ENV)) != 0)
			envp[j++] = environ[i];
	for (n = 0; envp[n];)
		n++;
	snprintf(var, sizeof(var), CHILD_ENV "=%d:%d:%s", wfd, resume ? 1 : 0, dir);
	envp[n] = var;
	char *argv[] = {"test_cold_kill", NULL};
	pid_t pid = fork();
	if (pid == 0) {
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	free(envp);
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	return pid;
}

/* What the children reported before they died. */
typedef struct progress {
	uint64_t durable;     /* largest evicted_blocks the last child reported */
	uint64_t units[NSEQ]; /* units synced per sequence (largest seen) */
	uint64_t messages;
	uint64_t named;       /* records reported durable by name, all children */
	bool is_durable[NSEQ][MAX_BLOCKS];
} progress;

static void note(progress *pr, const report *r)
{
	cr_assert_lt(r->seq, NSEQ);
	if (r->kind == DURABLE) {
		cr_assert_lt(r->a, MAX_BLOCKS);
		pr->named += !pr->is_durable[r->seq][r->a];
		pr->is_durable[r->seq][r->a] = true;
		return;
	}
	cr_assert_eq(r->kind, PROGRESS);
	if (r->a > pr->durable)
		pr->durable = r->a;
	if (r->b > pr->units[r->seq])
		pr->units[r->seq] = r->b;
	pr->messages++;
}

/* Reads one report: 1, 0 at end of file, or fails the test if the child
 * goes silent for a minute (a hang guard, not a timing assertion). */
static int read_report(int fd, report *r)
{
	size_t got = 0;
	while (got < sizeof(*r)) {
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, 60 * 1000);
		cr_assert_geq(n, 0, "poll: %s", strerror(errno));
		cr_assert_gt(n, 0, "the child sent nothing for a minute");
		ssize_t k = read(fd, (char *)r + got, sizeof(*r) - got);
		if (k < 0 && errno == EINTR)
			continue;
		cr_assert_geq(k, 0, "read: %s", strerror(errno));
		if (k == 0) {
			cr_assert_eq(got, 0, "torn report");
			return 0;
		}
		got += (size_t)k;
	}
	return 1;
}

/* Forks a child that evicts continuously; once it has reported `threshold`
 * durable records and `extra` more units after that, SIGKILLs it while it is
 * still storing. Then collects the reports it sent before dying. */
static void run_and_kill(progress *pr, uint64_t threshold, unsigned extra, unsigned jitter_us,
			 bool resume)
{
	int pfd[2];
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	/* the write end goes to the child across exec; only it */
	cr_assert_eq(fcntl(pfd[1], F_SETFD, 0), 0);
	pid_t pid = child_pid = spawn_child(pfd[1], resume);
	close(pfd[1]);
	pr->durable = 0; /* each child's counter starts at 0 */
	unsigned after = 0;
	report r;
	for (;;) {
		if (!read_report(pfd[0], &r)) {
			int ws = 0;
			waitpid(pid, &ws, 0);
			child_pid = 0;
			int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws);
			cr_assert_fail("the child stopped on its own before the kill: %s %d (see CHILD_*)",
				WIFEXITED(ws) ? "exit" : "signal", code);
		}
		note(pr, &r);
		if (r.kind == PROGRESS && pr->durable >= threshold && ++after > extra)
			break;
	}
	/* The child keeps storing while we wait a little, so the kill lands
	 * at a point of its store/evict/sync cycle unrelated to the report. */
	if (jitter_us)
		usleep(jitter_us);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	child_pid = 0;
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "the child died of something else first: status 0x%x", status);
	/* What it wrote before the kill is still in the pipe: all of it was
	 * reported durable before the kill too. */
	while (read_report(pfd[0], &r))
		note(pr, &r);
	close(pfd[0]);
	cr_assert_geq(pr->durable, threshold);
	cr_log_info("child killed after %llu units, %llu records reported durable (%llu named "
		    "so far)", (unsigned long long)pr->messages, (unsigned long long)pr->durable,
		    (unsigned long long)pr->named);
}

/* What the storage layer found after a kill. */
typedef struct found {
	uint64_t listed, good, corrupt;
	uint64_t prefix[NSEQ]; /* contiguous good records from block 0 */
	uint64_t recovered, torn;
} found;

static bool record_matches(tkv__cold *c, void *buf, uint64_t s, uint64_t block)
{
	unsigned char scratch[ROW];
	for (uint32_t l = 0; l < LAYERS; l++) {
		const unsigned char *k = tkv__cold_layer_ptr(c, buf, l), *v = k + BT * ROW;
		if (kvp_check(k, s, l, block * BT, BT, ROW, 0, scratch) != -1 ||
		    kvp_check(v, s, l, block * BT, BT, ROW, 1, scratch) != -1)
			return false;
	}
	return true;
}

/* (a): the cold directory through the storage layer alone, opened exactly
 * as tkv_open opens it. Reads every record whole (header identity and
 * every layer's CRC) and compares it with the pattern. A record that fails
 * its CRC is dropped by the read (and its header zeroed at close), so the
 * runtime opened next does not see it. */
static found check_storage(const progress *pr)
{
	found f = {0};
	tkv__cold_config cc;
	tkv__cold *c = NULL;
	tkv_config rc_cfg = kill_config();
	cold_config_of(&rc_cfg, &cc);
	cr_assert_eq(tkv__cold_open(&cc, &c), 0, "reopen after the kill: %s", tkv_last_error());
	cr_assert_eq(tkv__cold_block_bytes(c), BLOCK);

	uint64_t ids[NSEQ + 1];
	size_t n_ids = tkv__cold_list_seqs(c, ids, NSEQ + 1);
	cr_assert_leq(n_ids, NSEQ, "records of sequences the child never opened");
	void *buf = tkv__cold_buf_alloc(c);
	static bool good[NSEQ][MAX_BLOCKS];
	memset(good, 0, sizeof(good));
	cr_assert_not_null(buf);
	for (size_t j = 0; j < n_ids; j++) {
		uint32_t i = (uint32_t)(ids[j] - SEQ_ID(0));
		cr_assert(ids[j] >= SEQ_ID(0) && i < NSEQ, "unknown sequence id %#llx",
			  (unsigned long long)ids[j]);
		size_t n = tkv__cold_list_seq(c, ids[j], NULL, 0);
		tkv__cold_block_info *info = calloc(n ? n : 1, sizeof(*info));
		cr_assert_not_null(info);
		cr_assert_eq(tkv__cold_list_seq(c, ids[j], info, n), n);
		bool gap = false;
		for (size_t b = 0; b < n; b++) {
			uint32_t nt = 0;
			/* only complete units are evicted, and only units the child
			 * had finished storing (the one in progress at most) */
			cr_assert_eq(info[b].n_tokens, BT, "seq %u block %llu", i,
				     (unsigned long long)info[b].block);
			cr_assert_lt(info[b].block, MAX_BLOCKS);
			cr_assert_leq(info[b].block, pr->units[i],
				      "seq %u block %llu was never stored (%llu units synced)", i,
				      (unsigned long long)info[b].block,
				      (unsigned long long)pr->units[i]);
			int rc = tkv__cold_read_record(c, ids[j], info[b].block, buf, &nt);
			f.listed++;
			if (rc == -TKV_ECORRUPT) {
				cr_assert_not(pr->is_durable[i][info[b].block],
					      "seq %u block %llu was reported durable, reads corrupt", i,
					      (unsigned long long)info[b].block);
				f.corrupt++;
			} else {
				cr_assert_eq(rc, 0, "seq %u block %llu: %s", i,
					     (unsigned long long)info[b].block, tkv_strerror(rc));
				cr_assert_eq(nt, BT);
				cr_assert(record_matches(c, buf, ids[j], info[b].block),
					  "seq %u block %llu came back with wrong bytes", i,
					  (unsigned long long)info[b].block);
				good[i][info[b].block] = true;
				f.good++;
			}
			if (rc == 0 && !gap && info[b].block == f.prefix[i])
				f.prefix[i]++;
			else
				gap = true;
		}
		free(info);
	}
	tkv__cold_buf_free(c, buf);
	tkv__cold_stats st;
	tkv__cold_stats_get(c, &st);
	f.recovered = st.recovered;
	f.torn = st.recovery_torn;
	/* (a record replaced just before the kill may be found twice) */
	cr_assert_eq(st.recovered - st.recovery_dups, f.listed, "every recovered record is listed");
	cr_assert_eq(st.corrupt, f.corrupt);
	tkv__cold_close(c);
	cr_log_info("storage after the kill: %llu records (%llu good, %llu corrupt), recovery "
		    "skipped %llu torn slots", (unsigned long long)f.listed,
		    (unsigned long long)f.good, (unsigned long long)f.corrupt,
		    (unsigned long long)f.torn);
	/* Only a write still in flight at the kill may be torn; a record
	 * reported durable had been written and fdatasync'ed before. */
	cr_assert_leq(f.corrupt, MAX_IN_FLIGHT);
	for (uint32_t i = 0; i < NSEQ; i++)
		for (uint64_t b = 0; b < MAX_BLOCKS; b++)
			cr_assert(!pr->is_durable[i][b] || good[i][b],
				  "seq %u block %llu was reported durable and is gone", i,
				  (unsigned long long)b);
	return f;
}

/* (b): a runtime on the same directory restores each sequence's good
 * prefix, and reading it back (promoting every block) gives the pattern. */
static void check_runtime(const found *f)
{
	tkv_config c = kill_config();
	tkv_runtime *rt = NULL;
	unsigned char k[BT * ROW], v[BT * ROW], scratch[ROW];
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	for (uint32_t i = 0; i < NSEQ; i++) {
		uint64_t s = SEQ_ID(i), tokens = 0;
		cr_assert_eq(tkv_seq_open(rt, s), 0, "%s", tkv_last_error());
		cr_assert_eq(tkv_seq_info(rt, s, NULL, &tokens), 0);
		cr_assert_eq(tokens, f->prefix[i] * BT, "seq %u: restored %llu tokens, expected %llu",
			     i, (unsigned long long)tokens, (unsigned long long)(f->prefix[i] * BT));
		for (uint64_t p = 0; p < tokens; p += BT)
			for (uint32_t l = 0; l < LAYERS; l++) {
				int rc = tkv_read(rt, s, l, p, BT, k, v);
				cr_assert_eq(rc, 0, "seq %u layer %u pos %llu: %s (%s)", i, l,
					     (unsigned long long)p, tkv_strerror(rc), tkv_last_error());
				cr_assert_eq(kvp_check(k, s, l, p, BT, ROW, 0, scratch), -1,
					     "seq %u layer %u pos %llu: wrong K", i, l,
					     (unsigned long long)p);
				cr_assert_eq(kvp_check(v, s, l, p, BT, ROW, 1, scratch), -1,
					     "seq %u layer %u pos %llu: wrong V", i, l,
					     (unsigned long long)p);
			}
	}
	tkv_stats st = {.struct_size = sizeof(st)};
	cr_assert_eq(tkv_stats_get(rt, &st), 0);
	cr_assert_eq(st.corrupt_records, 0, "corrupt records were dropped by the check before");
	tkv_close(rt); /* sequences left open: their records stay */
}

static void kill_once(uint64_t threshold, unsigned extra, unsigned jitter_us)
{
	progress pr = {0};
	run_and_kill(&pr, threshold, extra, jitter_us, false);
	found f = check_storage(&pr);
	/* nothing was deleted, so every record reported durable is still
	 * there, and reads back intact */
	cr_assert_geq(f.good, pr.durable, "%llu records read back, %llu were reported durable",
		      (unsigned long long)f.good, (unsigned long long)pr.durable);
	cr_assert_gt(pr.named, 0, "the child named no durable record");
	/* more than reported: writes in flight at the kill that had reached
	 * the disk (the kill did land mid-eviction) */
	cr_log_info("%llu records beyond those reported durable",
		    (unsigned long long)(f.good - pr.durable));
	check_runtime(&f);
}

TestSuite(cold_kill, .init = make_dir, .fini = remove_dir, .timeout = 300);

/* Early: the first evictions, the store still mostly empty. */
Test(cold_kill, early)
{
	kill_once(24, 3, 150);
}

/* Deeper into the run, with a different number of units after the mark so
 * the kill lands at another point of the write/sync cycle. */
Test(cold_kill, midway)
{
	kill_once(800, 11, 400);
}

/* Kill, check, let a second child resume the recovered sequences (new
 * records after the restored prefixes, seqnos continuing, stale records
 * beyond a gap replaced), kill it too, check again. */
Test(cold_kill, twice)
{
	progress pr = {0};
	run_and_kill(&pr, 300, 7, 250, false);
	found f1 = check_storage(&pr);
	cr_assert_geq(f1.good, pr.durable);
	uint64_t kept = 0;
	for (uint32_t i = 0; i < NSEQ; i++)
		kept += f1.prefix[i];
	/* records past a gap (a write lost at the kill while a later one was
	 * durable) are not restored, but stay on disk */
	cr_log_info("%llu good records, %llu of them in the restored prefixes",
		    (unsigned long long)f1.good, (unsigned long long)kept);
	run_and_kill(&pr, 400, 5, 700, true);
	found f2 = check_storage(&pr);
	/* The second child wrote each of its durable records to a (sequence,
	 * block) past the restored prefixes, every one a different one, and
	 * never touched the prefixes: all of those must be there. */
	cr_assert_geq(f2.good, kept + pr.durable,
		      "%llu good records, expected at least %llu kept + %llu new",
		      (unsigned long long)f2.good, (unsigned long long)kept,
		      (unsigned long long)pr.durable);
	for (uint32_t i = 0; i < NSEQ; i++)
		cr_assert_geq(f2.prefix[i], f1.prefix[i], "seq %u lost part of its prefix", i);
	check_runtime(&f2);
}
