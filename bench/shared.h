/*
 * shared.h - the "shared" scenario's two halves: the raw hiredis baseline
 * (shared_raw.c: the cluster's masters, one plain hiredis connection each,
 * pipelined SET/GET passes shaped like the shared tier's traffic) and the
 * scenario itself (shared.c). Method: bench/README.md, "The shared scenario".
 */
#ifndef TKV_BENCH_SHARED_H
#define TKV_BENCH_SHARED_H

#include <stddef.h>
#include <stdint.h>

typedef struct shraw shraw;

/* Connects to the masters of the cluster behind `seeds` ("host:port[,...]";
 * the first seed that answers gives the map, CLUSTER SLOTS; a standalone
 * server is one master owning every slot). NULL with a message on stderr. */
shraw *shraw_open(const char *seeds, uint32_t timeout_ms);
void shraw_close(shraw *r);
uint32_t shraw_masters(const shraw *r);

/* One timed pass over n values (key i: key_len bytes at names + i *
 * (key_len + 1)), the way the shared tier pipelines them: in batches of
 * `batch` keys, each batch's keys grouped by the master owning their
 * slot, every group sent in windows
 * bounded by `inflight` value bytes (the client's rule, shared_client.h), every
 * group's window sent before any reply is read. SET sends "SET key value
 * NX" of vals[i] (len bytes); GET checks that each reply is a string of len
 * bytes. Returns the values that came back right (n on success) or -1 on a
 * connection failure (message on stderr). */
long shraw_set(shraw *r, const char *names, size_t key_len, void *const *vals, size_t len,
	       size_t n, size_t batch, uint64_t inflight);
long shraw_get(shraw *r, const char *names, size_t key_len, size_t len, size_t n, size_t batch,
	       uint64_t inflight);
/* DEL of the n keys (untimed cleanup: the bench removes only what it wrote).
 * 0 or -1. */
int shraw_del(shraw *r, const char *names, size_t key_len, size_t n);

#endif
