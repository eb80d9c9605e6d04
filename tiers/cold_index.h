/*
 * cold_index.h - the in-memory index of the cold tier:
 * (seq, block) -> (segment, slot, n_tokens, record seqno, layer CRCs).
 *
 * Structure: 64 stripes chosen by a hash of the sequence id, each with its
 * own mutex, a chained hash table of entries keyed by (seq, block) and a
 * table of per-sequence lists, so a sequence's blocks are found (list,
 * remove_seq) without scanning the whole index and operations on different
 * sequences rarely share a lock.
 *
 * Entry life cycle and references (all under the entry's stripe lock):
 *   PENDING  created by the writer at submit, invisible to lookups; refs =
 *            1 (table) + 1 (writer). remove()/remove_seq() unlink it (it is
 *            then "cancelled") so a record removed while its write is in
 *            flight never becomes visible.
 *   LIVE     after commit (write durable): visible; readers pin it (refs++)
 *            for the duration of their I/O, so its slot cannot be reused
 *            under them: no lock is held across I/O, the pin is what keeps
 *            the slot.
 *   unlinked removed from the table (remove, replaced by a newer seqno,
 *            corrupt, cancelled); when refs drops to 0 the retire callback
 *            gets the entry, after the stripe lock is released, and owns it
 *            (it frees the slot and the entry).
 * At most one LIVE entry per key: commit/insert keeps the one with the
 * larger record seqno and unlinks the other.
 *
 * Lock order: a stripe lock is a leaf; the retire callback runs with no
 * index lock held.
 */
#ifndef TKV_TIERS_COLD_INDEX_H
#define TKV_TIERS_COLD_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tkv__cold_ent {
	uint64_t seq, block, seqno;
	uint32_t seg, slot, n_tokens;
	/* Below: owned by the index, under the stripe lock. */
	uint32_t refs;
	uint8_t state;  /* ENT_PENDING / ENT_LIVE, see cold_index.c */
	bool linked;
	/* Removed as a record whose resurrection is harmless (remove_if with
	 * keep_header): its slot is reused without zeroing its header. */
	bool keep_header;
	struct tkv__cold_ent *hnext;        /* key-hash chain; retire-list link once unlinked */
	struct tkv__cold_ent *sprev, *snext; /* per-sequence list */
	uint32_t crc[];                     /* n_layers layer CRCs */
} tkv__cold_ent;

typedef struct tkv__cold_index tkv__cold_index;

/* Called, with no index lock held, for every entry whose last reference is
 * gone; it then owns the entry (and must free it with tkv__cold_ent_free). */
typedef void (*tkv__cold_retire_fn)(void *ctx, tkv__cold_ent *e);

/* One block of a sequence as listed. */
typedef struct tkv__cold_block_info {
	uint64_t block;
	uint32_t n_tokens;
	uint64_t seqno; /* the record's seqno (cold_record.h) */
} tkv__cold_block_info;

int tkv__cold_index_create(uint32_t n_layers, tkv__cold_retire_fn retire, void *ctx,
			   tkv__cold_index **out);
/* Frees every entry (retire is not called); no other thread may use it. */
void tkv__cold_index_destroy(tkv__cold_index *x);

/* A new entry (not in the index), or NULL. crc may be NULL (zeros). */
tkv__cold_ent *tkv__cold_ent_new(tkv__cold_index *x, uint64_t seq, uint64_t block,
				 uint64_t seqno, uint32_t seg, uint32_t slot, uint32_t n_tokens,
				 const uint32_t *crc);
void tkv__cold_ent_free(tkv__cold_ent *e);

/* Writer: adds e as PENDING (refs = 2). -ENOMEM if a table cannot grow. */
int tkv__cold_index_add_pending(tkv__cold_index *x, tkv__cold_ent *e);
/* Writer: the record of pending e is durable. Makes it LIVE (replacing an
 * older LIVE entry of the key) and drops the writer's reference. Returns 0,
 * or -ECANCELED if it was removed meanwhile (then it is retired). */
int tkv__cold_index_commit(tkv__cold_index *x, tkv__cold_ent *e);
/* Writer: the write of pending e failed; unlinks it and drops the writer's
 * reference (it is retired). */
void tkv__cold_index_abort(tkv__cold_index *x, tkv__cold_ent *e);
/* Recovery: inserts e as LIVE (refs = 1), resolving duplicates by seqno.
 * -ENOMEM if a table cannot grow. */
int tkv__cold_index_insert(tkv__cold_index *x, tkv__cold_ent *e);

/* The LIVE entry of (seq, block) with a reader pin, or NULL. */
tkv__cold_ent *tkv__cold_index_pin(tkv__cold_index *x, uint64_t seq, uint64_t block);
/* Releases a pin (retiring the entry if it was unlinked meanwhile). */
void tkv__cold_index_unpin(tkv__cold_index *x, tkv__cold_ent *e);
/* Unlinks e if it is still the LIVE entry (a corrupt record): true if so. */
bool tkv__cold_index_drop(tkv__cold_index *x, tkv__cold_ent *e);

/* true if (seq, block) has a LIVE entry; its token count to *n_tokens. */
bool tkv__cold_index_lookup(tkv__cold_index *x, uint64_t seq, uint64_t block,
			    uint32_t *n_tokens);
/* Unlinks the entries of (seq, block), pending ones included. Returns the
 * number of LIVE entries removed (0 or 1). */
int tkv__cold_index_remove(tkv__cold_index *x, uint64_t seq, uint64_t block);
/* As remove, only the entry with this seqno (0: any). keep_header marks a
 * LIVE entry it removes (see tkv__cold_ent.keep_header). */
int tkv__cold_index_remove_if(tkv__cold_index *x, uint64_t seq, uint64_t block, uint64_t seqno,
			      bool keep_header);
/* Unlinks every entry of seq; returns the number of LIVE entries removed. */
size_t tkv__cold_index_remove_seq(tkv__cold_index *x, uint64_t seq);

/* The LIVE blocks of seq, in increasing block order: fills up to max
 * entries of out and returns how many there are (may exceed max). */
size_t tkv__cold_index_list(tkv__cold_index *x, uint64_t seq, tkv__cold_block_info *out,
			    size_t max);
/* The sequence ids with LIVE blocks (any order): fills up to max and returns
 * how many there are. */
size_t tkv__cold_index_seqs(tkv__cold_index *x, uint64_t *out, size_t max);
/* Number of LIVE entries. */
uint64_t tkv__cold_index_count(tkv__cold_index *x);

#endif
