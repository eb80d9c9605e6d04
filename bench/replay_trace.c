/*
 * replay_trace.c - the trace side of the replay scenario: reading a
 * Mooncake JSON-lines or Azure CSV trace, numbering prefix chains, and the
 * two reference points computed from the trace alone (bench/replay.c uses
 * them beside tierkv's measured hit ratio).
 *
 * Format detection, from the content: the first non-blank character of the
 * file is '{' -> Mooncake JSON lines (timestamp, input_length,
 * output_length, hash_ids); else the first line must be a CSV header
 * naming TIMESTAMP, ContextTokens and GeneratedTokens -> Azure. Any line
 * that does not parse (missing field, not a number, trailing garbage) is
 * named on stderr as FILE:LINE and skipped.
 *
 * Blocks. A Mooncake prompt is its hash_ids, one cache block each (see
 * REPLAY_SCALE in replay.h). An Azure prompt of ContextTokens is
 * ceil(ContextTokens / 512) blocks with fresh ids (every prompt unique).
 * A node numbers a block's exact prefix chain: (parent node, id) -> node,
 * so two blocks get the same node iff their whole hash-id chains are equal,
 * which is exactly when the cache may share them.
 *
 * The ideal (unlimited cache, prefix order): a prompt's hits are the
 * longest prefix of its chain whose nodes an earlier prompt made.
 *
 * The LRU: exact, one entry per block, `capacity` entries. Per request, in
 * timestamp order: the prompt's hits are the longest prefix of its chain
 * present; then its blocks are touched from the last to the first (so the
 * head of a chain is the most recent, as an LRU prefix cache evicts the
 * tails of chains first on a tie of last use), inserting the missing ones;
 * then the output blocks that fill up (unique, as the runtime publishes
 * them too), evicting the least recently used entry whenever over capacity.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/replay.h"
#include "bench/replay_content.h"



uint32_t replay_prompt_token(uint64_t id, uint32_t i)
{
	/* a bijection of (id, i) for id < 2^59, truncated: 16 ids colliding
	 * in all 16 tokens is ~2^-512 */
	return (uint32_t)tkv__mix64((id << 4 | i) ^ 0x5a5a000000000000ull);
}

uint32_t replay_output_token(size_t request, uint32_t i)
{
	return (uint32_t)tkv__mix64(((uint64_t)request << 24 | i) ^ 0x7700000000000000ull) ^ 1u;
}

/* ---- growable arrays ---- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* ---- parsing ---- */

/* "key": <unsigned> anywhere on the line; false if absent or not a number. */
static bool json_uint(const char *line, const char *key, uint64_t *out, double *dout)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	const char *s = strstr(line, pat);
	if (!s)
		return false;
	s += strlen(pat);
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s++ != ':')
		return false;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	char *end;
	errno = 0;
	if (dout) {
		*dout = strtod(s, &end);
	} else {
		*out = strtoull(s, &end, 10);
	}
	return errno == 0 && end != s &&
	       (*end == ',' || *end == '}' || *end == ' ' || *end == '\t');
}

/* Appends the ids of "hash_ids": [...]; false if malformed. */
static bool json_ids(const char *line, uint64_t **ids, size_t *cap, size_t *n)
{
	const char *s = strstr(line, "\"hash_ids\"");
	if (!s)
		return false;
	s += strlen("\"hash_ids\"");
	while (*s == ' ')
		s++;
	if (*s++ != ':')
		return false;
	while (*s == ' ')
		s++;
	if (*s++ != '[')
		return false;
	while (*s == ' ')
		s++;
	if (*s == ']')
		return true;
	for (;;) {
		if (!isdigit((unsigned char)*s))
			return false;
		char *end;
		errno = 0;
		unsigned long long id = strtoull(s, &end, 10);
		if (errno || id >= 1ull << 59)
			return false;
		if (grow((void **)ids, cap, *n + 1, sizeof(**ids)))
			return false;
		(*ids)[(*n)++] = id;
		s = end;
		while (*s == ' ')
			s++;
		if (*s == ']')
			return true;
		if (*s++ != ',')
			return false;
		while (*s == ' ')
			s++;
	}
}

/* "2023-11-16 18:15:46.6805900" -> seconds since the epoch. */
static bool azure_time(const char *s, double *out)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, n = 0;
	double sec;
	if (sscanf(s, "%d-%d-%d %d:%d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n == 0)
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	*out = (double)timegm(&tm) + sec;
	return s[n] == ',';
}

static bool csv_uint(const char **s, uint64_t *out, char stop)
{
	if (!isdigit((unsigned char)**s))
		return false;
	char *end;
	errno = 0;
	*out = strtoull(*s, &end, 10);
	if (errno || (*end != stop && !(stop == '\0' && (*end == '\r' || *end == '\n'))))
		return false;
	*s = end + (*end == ',');
	return true;
}

/* ---- the prefix trie: (parent + 1, id) -> node ---- */

typedef struct trie {
	uint64_t *par, *id; /* par 0: empty slot */
	uint32_t *node;
	size_t mask;
} trie;

static int trie_init(trie *tr, size_t max)
{
	size_t n = 1;
	while (n < 2 * max + 16)
		n <<= 1;
	tr->par = calloc(n, sizeof(*tr->par));
	tr->id = calloc(n, sizeof(*tr->id));
	tr->node = calloc(n, sizeof(*tr->node));
	tr->mask = n - 1;
	return tr->par && tr->id && tr->node ? 0 : -ENOMEM;
}

static void trie_free(trie *tr)
{
	free(tr->par);
	free(tr->id);
	free(tr->node);
}

/* Node of (parent, id), made as *count if absent (*made = true). */
static uint32_t trie_get(trie *tr, uint32_t parent, uint64_t id, uint32_t *count, bool *made)
{
	uint64_t p = (uint64_t)parent + 2; /* parent UINT32_MAX: root */
	for (size_t i = tkv__mix64(p * 0x9e3779b97f4a7c15ull ^ tkv__mix64(id)) & tr->mask;;
	     i = (i + 1) & tr->mask) {
		if (tr->par[i] == p && tr->id[i] == id) {
			*made = false;
			return tr->node[i];
		}
		if (tr->par[i] == 0) {
			tr->par[i] = p;
			tr->id[i] = id;
			*made = true;
			return tr->node[i] = (*count)++;
		}
	}
}

/* ---- load ---- */

static int cmp_req(const void *a, const void *b)
{
	const replay_request *x = a, *y = b;
	if (x->t_ms != y->t_ms)
		return x->t_ms < y->t_ms ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first; /* stable: file order */
}

int replay_trace_load(replay_trace *t, const char *path, size_t limit)
{
	memset(t, 0, sizeof(*t));
	t->path = path;
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		fprintf(stderr, "tierkv-bench replay: %s: %s\n", path, strerror(e));
		return -e;
	}
	int c;
	while ((c = fgetc(f)) != EOF && isspace(c))
		;
	t->format = c == '{' ? REPLAY_MOONCAKE : REPLAY_AZURE;
	rewind(f);
	size_t rcap = 0, icap = 0, lineno = 0, len = 0;
	char *line = NULL;
	double t0 = 0;
	bool header = t->format == REPLAY_AZURE;
	int rc = 0;
	uint64_t azure_id = 0;
	while ((limit == 0 || t->n_req < limit) && getline(&line, &len, f) > 0) {
		lineno++;
		size_t ll = strlen(line);
		while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
			line[--ll] = '\0';
		const char *s = line;
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			continue;
		if (header) {
			header = false;
			if (!strstr(s, "TIMESTAMP") || !strstr(s, "ContextTokens") ||
			    !strstr(s, "GeneratedTokens")) {
				fprintf(stderr, "tierkv-bench replay: %s:%zu: neither a Mooncake JSON "
						"line nor the Azure CSV header "
						"TIMESTAMP,ContextTokens,GeneratedTokens\n", path, lineno);
				rc = -EINVAL;
				break;
			}
			continue;
		}
		if (grow((void **)&t->req, &rcap, t->n_req + 1, sizeof(*t->req))) {
			rc = -ENOMEM;
			break;
		}
		replay_request *r = &t->req[t->n_req];
		memset(r, 0, sizeof(*r));
		r->first = t->n_blocks;
		bool ok;
		double ts = 0;
		if (t->format == REPLAY_MOONCAKE) {
			ok = s[0] == '{' && json_uint(s, "timestamp", NULL, &ts) &&
			     json_uint(s, "input_length", &r->in_len, NULL) &&
			     json_uint(s, "output_length", &r->out_len, NULL) &&
			     json_ids(s, &t->ids, &icap, &t->n_blocks) && strchr(s, '}');
		} else {
			const char *p = s;
			ok = azure_time(p, &ts);
			if (ok) {
				p = strchr(p, ',') + 1;
				ok = csv_uint(&p, &r->in_len, ',') && csv_uint(&p, &r->out_len, '\0');
				ts *= 1000.0;
			}
			uint64_t nb = ok ? (r->in_len + REPLAY_TRACE_BLOCK - 1) / REPLAY_TRACE_BLOCK : 0;
			for (uint64_t j = 0; ok && j < nb; j++) {
				if (grow((void **)&t->ids, &icap, t->n_blocks + 1, sizeof(*t->ids))) {
					rc = -ENOMEM;
					break;
				}
				t->ids[t->n_blocks++] = azure_id++;
			}
		}
		if (rc)
			break;
		if (!ok || ts < 0) {
			fprintf(stderr, "tierkv-bench replay: %s:%zu: malformed %s line, skipped: "
					"%.60s\n", path, lineno,
				t->format == REPLAY_MOONCAKE ? "Mooncake" : "Azure", s);
			t->n_blocks = r->first;
			t->malformed++;
			continue;
		}
		if (t->n_blocks - r->first > 1u << 20 || r->out_len > 1ull << 30) {
			fprintf(stderr, "tierkv-bench replay: %s:%zu: request too long, skipped\n",
				path, lineno);
			t->n_blocks = r->first;
			t->malformed++;
			continue;
		}
		if (t->n_req == 0)
			t0 = ts;
		r->t_ms = ts - t0;
		r->n_blocks = (uint32_t)(t->n_blocks - r->first);
		r->out_tokens = (uint32_t)((r->out_len + REPLAY_SCALE - 1) / REPLAY_SCALE);
		t->n_req++;
	}
	free(line);
	fclose(f);
	if (rc == 0 && t->n_req == 0) {
		fprintf(stderr, "tierkv-bench replay: %s: no request\n", path);
		rc = -EINVAL;
	}
	if (rc) {
		replay_trace_free(t);
		return rc;
	}
	/* timestamp order (relative to the first line; Azure's are absolute) */
	double min = 0;
	for (size_t r = 0; r < t->n_req; r++)
		min = t->req[r].t_ms < min ? t->req[r].t_ms : min;
	for (size_t r = 0; r < t->n_req; r++)
		t->req[r].t_ms -= min;
	qsort(t->req, t->n_req, sizeof(*t->req), cmp_req);

	/* number prefix chains, in timestamp order: nodes made earlier are the ideal's hits */
	trie tr;
	t->nodes = malloc((t->n_blocks ? t->n_blocks : 1) * sizeof(*t->nodes));
	if (!t->nodes || trie_init(&tr, t->n_blocks)) {
		replay_trace_free(t);
		return -ENOMEM;
	}
	uint32_t count = 0;
	for (size_t r = 0; r < t->n_req; r++) {
		replay_request *q = &t->req[r];
		uint32_t parent = UINT32_MAX;
		bool prefix = true;
		for (uint32_t j = 0; j < q->n_blocks; j++) {
			bool made;
			parent = trie_get(&tr, parent, t->ids[q->first + j], &count, &made);
			t->nodes[q->first + j] = parent;
			prefix = prefix && !made;
			q->ideal_hits += prefix;
		}
		t->ideal_hits += q->ideal_hits;
		t->max_blocks = q->n_blocks > t->max_blocks ? q->n_blocks : t->max_blocks;
		t->max_out = q->out_tokens > t->max_out ? q->out_tokens : t->max_out;
	}
	trie_free(&tr);
	t->prompt_nodes = count;
	/* output blocks: unique nodes after the prompts' */
	for (size_t r = 0; r < t->n_req; r++) {
		replay_request *q = &t->req[r];
		q->out_node = count;
		uint32_t ob = (q->out_tokens + REPLAY_BT - 1) / REPLAY_BT;
		count += ob;
		t->output_full_blocks += q->out_tokens / REPLAY_BT;
	}
	t->n_nodes = count;
	return 0;
}

void replay_trace_free(replay_trace *t)
{
	free(t->req);
	free(t->ids);
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

/* ---- exact LRU: a doubly linked list over node numbers ---- */

typedef struct lru {
	uint32_t *prev, *next; /* UINT32_MAX: none */
	bool *in;
	uint32_t head, tail; /* head: most recent */
	uint64_t size, cap;
} lru;

static void lru_unlink(lru *l, uint32_t x)
{
	if (l->prev[x] != UINT32_MAX)
		l->next[l->prev[x]] = l->next[x];
	else
		l->head = l->next[x];
	if (l->next[x] != UINT32_MAX)
		l->prev[l->next[x]] = l->prev[x];
	else
		l->tail = l->prev[x];
}

static void lru_touch(lru *l, uint32_t x)
{
	if (l->in[x]) {
		lru_unlink(l, x);
	} else {
		l->in[x] = true;
		l->size++;
	}
	l->prev[x] = UINT32_MAX;
	l->next[x] = l->head;
	if (l->head != UINT32_MAX)
		l->prev[l->head] = x;
	l->head = x;
	if (l->tail == UINT32_MAX)
		l->tail = x;
	while (l->size > l->cap) {
		uint32_t v = l->tail;
		lru_unlink(l, v);
		l->in[v] = false;
		l->size--;
	}
}

uint64_t replay_lru_hits(const replay_trace *t, uint64_t capacity, uint32_t every,
			 double *held_mean)
{
	uint64_t held_sum = 0, samples = 0;
	lru l = {.head = UINT32_MAX, .tail = UINT32_MAX, .cap = capacity};
	size_t n = t->n_nodes ? t->n_nodes : 1;
	l.prev = malloc(n * sizeof(*l.prev));
	l.next = malloc(n * sizeof(*l.next));
	l.in = calloc(n, sizeof(*l.in));
	uint64_t hits = 0;
	if (!l.prev || !l.next || !l.in || capacity == 0)
		goto out;
	for (size_t r = 0; r < t->n_req; r++) {
		const replay_request *q = &t->req[r];
		const uint32_t *nodes = t->nodes + q->first;
		uint32_t h = 0;
		while (h < q->n_blocks && l.in[nodes[h]])
			h++;
		hits += h;
		for (uint32_t j = q->n_blocks; j-- > 0;)
			lru_touch(&l, nodes[j]);
		for (uint32_t b = 0; b < q->out_tokens / REPLAY_BT; b++)
			lru_touch(&l, q->out_node + b);
		if (every && (r + 1) % every == 0) {
			held_sum += l.size;
			samples++;
		}
	}
out:
	if (held_mean)
		*held_mean = samples ? (double)held_sum / (double)samples / (double)capacity : 0;
	free(l.prev);
	free(l.next);
	free(l.in);
	return hits;
}
