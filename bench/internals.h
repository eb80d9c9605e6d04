/*
 * internals.h - the one door from the bench into tierkv's internals.
 *
 * Everything else the bench uses is the public API (tierkv.h). The bench
 * needs a few internals because it measures the library against limits of
 * the same shape, or times a part of the library on its own; each include
 * below says which and why. Keep this list short: when the library moves a
 * module, this file is the only one in bench/ whose paths change.
 */
#ifndef TKV_BENCH_INTERNALS_H
#define TKV_BENCH_INTERNALS_H

/* replay: the library's one integer mixer, for synthetic token ids and KV rows
 * that are functions of the trace (bench/replay_content.h). */
#include "base/hash.h"

/* report.c: the library's one growable array (results kept for JSON/CSV). */
#include "base/array.h"

/* main.c: the library's one byte-size parser (bench options such as
 * --hot 256M parse exactly like the TKV_STREAM_THRESHOLD knob). */
#include "base/size.h"

/* kernels.c, limits.c: every ISA's copy and CRC32C kernel by level
 * (tkv__kernels_for), to time each against glibc memcpy and to take the best
 * streaming copy as the hot path's limit. */
#include "kernels/kernels.h"

/* pipeline.c: tkv__open_ex with TKV__QUEUE_MUTEX, the mutex-queue baseline
 * the ring is compared with. ring.c: tkv__desc and its ck_ring functions,
 * so the ring bench moves the runtime's own descriptor. */
#include "runtime/runtime.h"

/* evict: the cold record layout (tkv__cold_layout_init: record size, layer
 * slice stride), i.e. the evictor's write size and promotion's read size,
 * which the raw O_DIRECT baseline must use to be the same I/O. */
#include "tiers/cold_record.h"

/* evict: the cold tier's defaults (tkv__cold_config_default: write queue
 * depth, read depth, sync batch) and the evictor's cap on records in flight
 * (TKV__EVICT_BUFS), so the raw baseline keeps as many I/Os in flight and
 * syncs as often as the runtime it is compared with. */
#include "tiers/cold.h"
#include "tiers/evictor.h"

/* cache_attach.c: the block key chain alone (tkv__key_chain), the limit an
 * attach is compared with: hashing the prompt, which any cache must do. */
#include "tiers/block_key.h"

/* shared.c: the shared tier itself (tkv__shared_tier_put/fetch, timed
 * without a runtime around it) and the shape of its traffic (write batch,
 * fetch window, key length); shared_raw.c: the client's slot function and
 * window rule, so the raw hiredis baseline sends each key to the master
 * owning it and pipelines exactly as deep. */
#include "tiers/shared_tier.h"
#include "tiers/shared_client.h"
/* replay: how many cache entries have lost their parent entry
 * (tkv__cache_orphans), sampled to explain a hit ratio below the LRU
 * reference: an orphan holds capacity no lookup can use. */
#include "tiers/cache.h"

#endif
