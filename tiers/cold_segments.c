/*
 * cold_segments.c - cold directory lock, manifest, segment files and slot
 * bitmap (design and invariants: cold_segments.h).
 *
 * Crash safety of creation: segment files are created and preallocated
 * first, the manifest is written last (temp + fsync + rename + dir fsync).
 * A crash before the rename leaves no manifest, so the next open creates a
 * new store with a new store id; any record left in the reused segment
 * files carries the old id and is ignored by recovery.
 */
#define _GNU_SOURCE
#include "tiers/cold_segments.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ck_pr.h>

#include "base/error.h"

#define MAN_MAGIC "TKVCMAN1"
/* Version 2: records carry flags, a cache key and token ids (cold_record.h).
 * A version 1 directory is refused with a message, not misread. */
#define MAN_VERSION 2u
#define MAN_BYTES 128u
#define MAX_SEGS 100000u

/* Manifest fields at fixed little-endian offsets (see write_manifest). */
typedef struct manifest {
	uint32_t n_layers, n_kv_heads, head_dim, dtype, block_tokens;
	uint64_t block_bytes, record_bytes, header_bytes;
	uint32_t slots_per_seg, n_segs;
	uint64_t total_slots, store_id;
} manifest;

static void put32(unsigned char *b, size_t o, uint32_t v) { memcpy(b + o, &v, 4); }
static void put64(unsigned char *b, size_t o, uint64_t v) { memcpy(b + o, &v, 8); }
static uint32_t get32(const unsigned char *b, size_t o) { uint32_t v; memcpy(&v, b + o, 4); return v; }
static uint64_t get64(const unsigned char *b, size_t o) { uint64_t v; memcpy(&v, b + o, 8); return v; }

static uint32_t man_crc(tkv__crc_fn crc, const unsigned char *b)
{
	return crc(crc(0, b, 12), b + 16, MAN_BYTES - 16);
}

static void man_encode(const manifest *m, tkv__crc_fn crc, unsigned char *b)
{
	memset(b, 0, MAN_BYTES);
	memcpy(b, MAN_MAGIC, 8);
	put32(b, 8, MAN_VERSION);
	put32(b, 16, m->n_layers);
	put32(b, 20, m->n_kv_heads);
	put32(b, 24, m->head_dim);
	put32(b, 28, m->dtype);
	put32(b, 32, m->block_tokens);
	put64(b, 40, m->block_bytes);
	put64(b, 48, m->record_bytes);
	put64(b, 56, m->header_bytes);
	put32(b, 64, m->slots_per_seg);
	put32(b, 68, m->n_segs);
	put64(b, 72, m->total_slots);
	put64(b, 80, m->store_id);
	put32(b, 12, man_crc(crc, b));
}

static int man_decode(const unsigned char *b, tkv__crc_fn crc, manifest *m)
{
	if (memcmp(b, MAN_MAGIC, 8) != 0 || get32(b, 8) != MAN_VERSION ||
	    get32(b, 12) != man_crc(crc, b))
		return -TKV_ECORRUPT;
	m->n_layers = get32(b, 16);
	m->n_kv_heads = get32(b, 20);
	m->head_dim = get32(b, 24);
	m->dtype = get32(b, 28);
	m->block_tokens = get32(b, 32);
	m->block_bytes = get64(b, 40);
	m->record_bytes = get64(b, 48);
	m->header_bytes = get64(b, 56);
	m->slots_per_seg = get32(b, 64);
	m->n_segs = get32(b, 68);
	m->total_slots = get64(b, 72);
	m->store_id = get64(b, 80);
	return 0;
}

static char *path_of(const tkv__cold_segs *s, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", s->dir, name);
	return buf;
}

static void seg_name(uint32_t i, char *buf, size_t n)
{
	snprintf(buf, n, "seg-%05u", i);
}

static int take_lock(tkv__cold_segs *s)
{
	char p[PATH_MAX], owner[32] = "";
	ssize_t n;
	int fd = open(path_of(s, "lock", p, sizeof(p)), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return tkv__fail(-errno, "cold dir %s: cannot open lock file: %s", s->dir,
				 strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		n = pread(fd, owner, sizeof(owner) - 1, 0);
		owner[n > 0 ? n : 0] = '\0';
		owner[strcspn(owner, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return tkv__fail(-EBUSY,
					 "cold dir %s is in use by another tierkv runtime "
					 "(lock held; owner pid %s)",
					 s->dir, owner[0] ? owner : "unknown");
		return tkv__fail(-e, "cold dir %s: flock: %s", s->dir, strerror(e));
	}
	n = snprintf(owner, sizeof(owner), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, owner, (size_t)n, 0) < 0) {
		/* informational only */
	}
	s->lock_fd = fd;
	return 0;
}

static int fsync_dir(const tkv__cold_segs *s)
{
	int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Reads the manifest: 0 (filled), -ENOENT (none), -TKV_ECORRUPT. */
static int read_manifest(const tkv__cold_segs *s, tkv__crc_fn crc, manifest *m)
{
	char p[PATH_MAX];
	unsigned char b[MAN_BYTES];
	ssize_t n;
	int fd = open(path_of(s, "manifest", p, sizeof(p)), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT
				       : tkv__fail(-errno, "cold dir %s: manifest: %s", s->dir,
						   strerror(errno));
	n = pread(fd, b, sizeof(b), 0);
	close(fd);
	if (n == (ssize_t)sizeof(b) && memcmp(b, MAN_MAGIC, 8) == 0 && get32(b, 8) != MAN_VERSION)
		return tkv__fail(-EPROTONOSUPPORT,
				 "cold dir %s was written with record format %u; this tierkv "
				 "reads and writes format %u (records carry prefix-cache keys): "
				 "use another directory or remove this one",
				 s->dir, get32(b, 8), MAN_VERSION);
	if (n != (ssize_t)sizeof(b) || man_decode(b, crc, m) < 0)
		return tkv__fail(-TKV_ECORRUPT,
				 "cold dir %s: manifest is damaged (not a tierkv cold directory, "
				 "or torn); remove the directory to start an empty cold tier",
				 s->dir);
	return 0;
}

static int write_manifest(const tkv__cold_segs *s, tkv__crc_fn crc, const manifest *m)
{
	char tmp[PATH_MAX], fin[PATH_MAX];
	unsigned char b[MAN_BYTES];
	int fd, rc = 0;
	man_encode(m, crc, b);
	fd = open(path_of(s, "manifest.tmp", tmp, sizeof(tmp)),
		  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return tkv__fail(-errno, "cold dir %s: manifest: %s", s->dir, strerror(errno));
	if (pwrite(fd, b, sizeof(b), 0) != (ssize_t)sizeof(b) || fsync(fd) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (rc == 0 && rename(tmp, path_of(s, "manifest", fin, sizeof(fin))) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fsync_dir(s);
	if (rc < 0) {
		unlink(tmp);
		return tkv__fail(rc, "cold dir %s: writing the manifest failed: %s", s->dir,
				 strerror(-rc));
	}
	return 0;
}

static const char *dtype_name(uint32_t d)
{
	return d == TKV_DTYPE_F32 ? "f32" : d == TKV_DTYPE_F16 ? "f16" : d == TKV_DTYPE_BF16 ? "bf16" : "?";
}

/* The layout this config asks for, as a manifest (store_id left 0). */
static int plan(const tkv__cold_layout *l, uint64_t cap, uint64_t seg_bytes,
		manifest *m)
{
	uint64_t total = cap / l->record_bytes, per;
	if (total == 0)
		return tkv__fail(-EINVAL,
				 "cold config.capacity_bytes: %llu is smaller than one record "
				 "(%llu bytes for this geometry)",
				 (unsigned long long)cap, (unsigned long long)l->record_bytes);
	per = (seg_bytes ? seg_bytes : TKV__COLD_SEG_DEFAULT) / l->record_bytes;
	per = per == 0 ? 1 : per > total ? total : per > UINT32_MAX ? UINT32_MAX : per;
	if ((total + per - 1) / per > MAX_SEGS)
		return tkv__fail(-EINVAL, "cold config: %llu segments needed, at most %u (raise "
				 "segment_bytes)", (unsigned long long)((total + per - 1) / per), MAX_SEGS);
	memset(m, 0, sizeof(*m));
	m->n_layers = l->n_layers;
	m->n_kv_heads = l->n_kv_heads;
	m->head_dim = l->head_dim;
	m->dtype = (uint32_t)l->dtype;
	m->block_tokens = l->block_tokens;
	m->block_bytes = l->block_bytes;
	m->record_bytes = l->record_bytes;
	m->header_bytes = l->header_bytes;
	m->slots_per_seg = (uint32_t)per;
	m->n_segs = (uint32_t)((total + per - 1) / per);
	m->total_slots = total;
	return 0;
}

static int check_manifest(const tkv__cold_segs *s, const manifest *have, const manifest *want)
{
	if (have->n_layers != want->n_layers || have->n_kv_heads != want->n_kv_heads ||
	    have->head_dim != want->head_dim || have->dtype != want->dtype ||
	    have->block_tokens != want->block_tokens || have->block_bytes != want->block_bytes ||
	    have->record_bytes != want->record_bytes || have->header_bytes != want->header_bytes)
		return tkv__fail(-EMEDIUMTYPE,
				 "cold dir %s holds records of geometry layers=%u kv_heads=%u "
				 "head_dim=%u dtype=%s block_tokens=%u, but the runtime is "
				 "configured with layers=%u kv_heads=%u head_dim=%u dtype=%s "
				 "block_tokens=%u; use another directory or remove this one",
				 s->dir, have->n_layers, have->n_kv_heads, have->head_dim,
				 dtype_name(have->dtype), have->block_tokens, want->n_layers,
				 want->n_kv_heads, want->head_dim, dtype_name(want->dtype),
				 want->block_tokens);
	if (have->slots_per_seg != want->slots_per_seg || have->n_segs != want->n_segs ||
	    have->total_slots != want->total_slots)
		return tkv__fail(-EINVAL,
				 "cold dir %s was created with %llu records in %u segments of %u; "
				 "the configured capacity/segment size gives %llu in %u of %u: "
				 "use the same capacity_bytes and segment_bytes, or remove the "
				 "directory",
				 s->dir, (unsigned long long)have->total_slots, have->n_segs,
				 have->slots_per_seg, (unsigned long long)want->total_slots,
				 want->n_segs, want->slots_per_seg);
	return 0;
}

/* Preallocates [0, size) of fd; falls back to a sparse file if the
 * filesystem has no fallocate. */
static int prealloc(tkv__cold_segs *s, const tkv__cold_io *hooks, int fd, uint32_t i,
		    uint64_t size)
{
	int rc = tkv__cold_io_check(hooks, TKV__COLD_OP_FALLOCATE, i);
	if (rc == 0 && fallocate(fd, 0, 0, (off_t)size) < 0)
		rc = -errno;
	if (rc == -EOPNOTSUPP || rc == -ENOSYS) {
		s->prealloc = false;
		snprintf(s->note, sizeof(s->note), "no fallocate on this filesystem: sparse segments");
		rc = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	}
	if (rc < 0) {
		if (rc == -ENOSPC || rc == -EDQUOT)
			return tkv__fail(-ENOSPC,
					 "cold dir %s: cannot preallocate segment %u (%llu bytes): "
					 "no space left on the filesystem; lower capacity_bytes",
					 s->dir, i, (unsigned long long)size);
		return tkv__fail(rc, "cold dir %s: preallocating segment %u: %s", s->dir, i,
				 strerror(-rc));
	}
	return 0;
}

/* Opens segment i with O_DIRECT if the filesystem allows it. */
static int open_seg_fd(tkv__cold_segs *s, const tkv__cold_io *hooks, uint32_t i, const char *p)
{
	int fd, rc;
	if (s->direct) {
		rc = tkv__cold_io_check(hooks, TKV__COLD_OP_OPEN_DIRECT, i);
		fd = rc < 0 ? (errno = -rc, -1) : open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT, 0644);
		if (fd >= 0 || errno != EINVAL)
			return fd < 0 ? -errno : fd;
		s->direct = false;
		snprintf(s->note, sizeof(s->note), "O_DIRECT refused (EINVAL): buffered I/O");
	}
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	return fd < 0 ? -errno : fd;
}

/* Some filesystems accept the O_DIRECT flag but refuse the I/O: read one
 * aligned block of segment 0 (harmless) and fall back if that fails. */
static int probe_direct(tkv__cold_segs *s, const char *p)
{
	void *buf;
	ssize_t n;
	int fd;
	if (!s->direct || posix_memalign(&buf, TKV__COLD_ALIGN, TKV__COLD_ALIGN) != 0)
		return 0;
	n = pread(s->seg[0].fd, buf, TKV__COLD_ALIGN, 0);
	free(buf);
	if (n >= 0 || errno != EINVAL)
		return 0;
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return tkv__fail(-errno, "cold dir %s: reopening segment 0: %s", s->dir, strerror(errno));
	close(s->seg[0].fd);
	s->seg[0].fd = fd;
	s->direct = false;
	snprintf(s->note, sizeof(s->note), "O_DIRECT read refused (EINVAL): buffered I/O");
	return 0;
}

static int open_seg(tkv__cold_segs *s, const tkv__cold_io *hooks, uint32_t i, uint64_t rec)
{
	char name[32], p[PATH_MAX];
	struct stat st;
	tkv__cold_seg *g = &s->seg[i];
	uint64_t size = (uint64_t)g->n_slots * rec;
	int fd, rc;
	seg_name(i, name, sizeof(name));
	path_of(s, name, p, sizeof(p));
	fd = open_seg_fd(s, hooks, i, p);
	if (fd < 0)
		return tkv__fail(fd, "cold dir %s: opening %s: %s", s->dir, name, strerror(-fd));
	g->fd = fd;
	if (fstat(fd, &st) < 0)
		return tkv__fail(-errno, "cold dir %s: stat %s: %s", s->dir, name, strerror(errno));
	if ((uint64_t)st.st_size < size && (rc = prealloc(s, hooks, fd, i, size)) < 0)
		return rc;
	if (i == 0)
		return probe_direct(s, p);
	return 0;
}

static void close_segs(tkv__cold_segs *s, bool unlink_them)
{
	char name[32], p[PATH_MAX];
	for (uint32_t i = 0; s->seg && i < s->n_segs; i++) {
		if (s->seg[i].fd >= 0)
			close(s->seg[i].fd);
		free(s->seg[i].bitmap);
		if (unlink_them) {
			seg_name(i, name, sizeof(name));
			unlink(path_of(s, name, p, sizeof(p)));
		}
	}
	free(s->seg);
	s->seg = NULL;
}

static int alloc_segs(tkv__cold_segs *s, const manifest *m)
{
	s->n_segs = m->n_segs;
	s->slots_per_seg = m->slots_per_seg;
	s->total_slots = m->total_slots;
	s->seg = calloc(m->n_segs, sizeof(*s->seg));
	if (!s->seg)
		return tkv__fail(-ENOMEM, "cold: out of memory for %u segments", m->n_segs);
	for (uint32_t i = 0; i < m->n_segs; i++) {
		uint64_t left = m->total_slots - (uint64_t)i * m->slots_per_seg;
		tkv__cold_seg *g = &s->seg[i];
		g->fd = -1;
		g->n_slots = (uint32_t)(left < m->slots_per_seg ? left : m->slots_per_seg);
		g->n_free = g->n_slots;
		g->bitmap = calloc((g->n_slots + 63) / 64, sizeof(uint64_t));
		if (!g->bitmap)
			return tkv__fail(-ENOMEM, "cold: out of memory for slot bitmaps");
	}
	return 0;
}

static int new_store_id(uint64_t *id)
{
	if (getrandom(id, sizeof(*id), 0) != (ssize_t)sizeof(*id))
		*id = tkv__cold_now_ns() ^ ((uint64_t)getpid() << 32);
	*id |= 1; /* never 0, so a zeroed header never matches */
	return 0;
}

static int open_files(tkv__cold_segs *s, const tkv__cold_layout *l, const tkv__cold_io *hooks,
		      tkv__crc_fn crc, manifest *want)
{
	manifest have;
	int rc = read_manifest(s, crc, &have);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	s->fresh = rc == -ENOENT;
	if (!s->fresh && (rc = check_manifest(s, &have, want)) < 0)
		return rc;
	if (s->fresh)
		new_store_id(&want->store_id);
	else
		want->store_id = have.store_id;
	s->store_id = want->store_id;
	if ((rc = alloc_segs(s, want)) < 0)
		return rc;
	for (uint32_t i = 0; i < s->n_segs; i++)
		if ((rc = open_seg(s, hooks, i, l->record_bytes)) < 0)
			return rc;
	if (s->fresh && (rc = fsync_dir(s)) == 0)
		rc = write_manifest(s, crc, want);
	return rc;
}

int tkv__cold_segs_open(tkv__cold_segs *s, const char *dir, const tkv__cold_layout *l,
			uint64_t capacity_bytes, uint64_t seg_bytes, const tkv__cold_io *hooks,
			tkv__crc_fn crc)
{
	manifest want;
	int rc;
	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
	s->direct = true;
	s->prealloc = true;
	if (!dir || !*dir)
		return tkv__fail(-EINVAL, "cold config.dir: NULL or empty");
	if ((rc = plan(l, capacity_bytes, seg_bytes, &want)) < 0)
		return rc;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return tkv__fail(-errno, "cold config.dir: cannot create %s: %s", dir, strerror(errno));
	if (!(s->dir = strdup(dir)))
		return tkv__fail(-ENOMEM, "cold: out of memory");
	if ((rc = take_lock(s)) < 0 || (rc = open_files(s, l, hooks, crc, &want)) < 0) {
		close_segs(s, s->fresh); /* a new store that failed leaves nothing behind */
		if (s->lock_fd >= 0)
			close(s->lock_fd);
		free(s->dir);
		s->dir = NULL;
		return rc;
	}
	return 0;
}

void tkv__cold_segs_close(tkv__cold_segs *s)
{
	close_segs(s, false);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	s->lock_fd = -1;
	free(s->dir);
	s->dir = NULL;
}

/* First clear bit at or after `from` (wrapping), or UINT32_MAX. */
static uint32_t find_free(const tkv__cold_seg *g, uint32_t from)
{
	uint32_t words = (g->n_slots + 63) / 64;
	for (uint32_t k = 0; k <= words; k++) {
		uint32_t w = (from / 64 + k) % words;
		uint64_t bits = ~g->bitmap[w];
		if (k == 0)
			bits &= ~0ull << (from % 64);
		while (bits) {
			uint32_t slot = w * 64 + (uint32_t)__builtin_ctzll(bits);
			if (slot < g->n_slots)
				return slot;
			bits &= bits - 1;
		}
	}
	return UINT32_MAX;
}

int tkv__cold_segs_alloc(tkv__cold_segs *s, uint32_t *seg, uint32_t *slot)
{
	for (uint32_t k = 0; k < s->n_segs; k++) {
		uint32_t i = (s->cur + k) % s->n_segs, j;
		tkv__cold_seg *g = &s->seg[i];
		if (!g->n_free)
			continue;
		j = find_free(g, g->cursor < g->n_slots ? g->cursor : 0);
		if (j == UINT32_MAX)
			continue; /* n_free out of step: cannot happen */
		s->cur = i;
		g->cursor = j + 1;
		*seg = i;
		*slot = j;
		tkv__cold_segs_mark(s, i, j);
		return 0;
	}
	return -ENOSPC;
}

void tkv__cold_segs_mark(tkv__cold_segs *s, uint32_t seg, uint32_t slot)
{
	tkv__cold_seg *g = &s->seg[seg];
	uint64_t bit = 1ull << (slot % 64);
	if (g->bitmap[slot / 64] & bit)
		return;
	g->bitmap[slot / 64] |= bit;
	g->n_free--;
	ck_pr_inc_64(&s->used_slots);
}

void tkv__cold_segs_free(tkv__cold_segs *s, uint32_t seg, uint32_t slot)
{
	tkv__cold_seg *g = &s->seg[seg];
	uint64_t bit = 1ull << (slot % 64);
	if (!(g->bitmap[slot / 64] & bit))
		return;
	g->bitmap[slot / 64] &= ~bit;
	g->n_free++;
	ck_pr_dec_64(&s->used_slots);
}

bool tkv__cold_segs_used(const tkv__cold_segs *s, uint32_t seg, uint32_t slot)
{
	return s->seg[seg].bitmap[slot / 64] >> (slot % 64) & 1;
}
