/*
 * seq_table.h - sequence id -> sequence, for any number of engine threads.
 *
 * Sharded by id hash, one mutex per shard, each on its own cache line: a
 * lookup is a short critical section (find + take a reference), so engine
 * threads working on different sequences almost never meet on a lock, and no
 * lock is ever held while waiting for a worker or for I/O. A reference
 * (tkv__seq.refs) keeps the sequence alive after the lock is dropped;
 * seq_close removes the sequence first and then waits for references to
 * drain, so a reader racing with close either gets -ENOENT or finishes with
 * valid memory.
 */
#ifndef TKV_RUNTIME_SEQ_TABLE_H
#define TKV_RUNTIME_SEQ_TABLE_H

#include <pthread.h>

#include "tiers/block_store.h"

#define TKV__SEQ_SHARDS 64

typedef struct tkv__seq_shard {
	pthread_mutex_t lock;
	tkv__seq **buckets;
	uint32_t n_buckets; /* power of two */
	uint32_t count;
} __attribute__((aligned(64))) tkv__seq_shard;

typedef struct tkv__seq_table {
	tkv__seq_shard shards[TKV__SEQ_SHARDS];
	uint64_t count; /* open sequences (atomic) */
} tkv__seq_table;

int tkv__seq_table_init(tkv__seq_table *t);
/* Frees the table; sequences still in it are handed to drop(). */
void tkv__seq_table_fini(tkv__seq_table *t, void (*drop)(void *ctx, tkv__seq *s), void *ctx);

/* Inserts s; -EEXIST if its id is present, -ENOMEM. */
int tkv__seq_table_insert(tkv__seq_table *t, tkv__seq *s);
/* Finds id and takes a reference, or NULL. Release with tkv__seq_put
 * (tiers/block_store.h). */
tkv__seq *tkv__seq_get(tkv__seq_table *t, uint64_t id);
/* Removes id if it has no pins; returns it (caller then waits for refs to
 * drain) or NULL with *err = -ENOENT / -EBUSY. */
tkv__seq *tkv__seq_table_remove(tkv__seq_table *t, uint64_t id, int *err);

#endif
