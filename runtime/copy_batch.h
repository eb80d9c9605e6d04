/*
 * copy_batch.h - one batch's copy into the hot tier, for every thread that
 * copies: workers (worker.c) and ticket waiters (copy_ahead.c).
 */
#ifndef TKV_RUNTIME_COPY_BATCH_H
#define TKV_RUNTIME_COPY_BATCH_H

#include <stdbool.h>

#include "runtime/desc_ring.h"

struct tkv_runtime;

/* d's layer lost a block: nothing more is allocated, copied by anyone but
 * its owner, or handed on for it. */
bool tkv__batch_layer_failed(const tkv__desc *d);

/* Allocates the hot blocks d writes (thief: only those that start in d;
 * the owner, which reaches d after every earlier batch of its queue: all
 * of them). A failure is left for tkv__batch_copy to report. */
void tkv__batch_prepare(struct tkv_runtime *rt, const tkv__desc *d, bool thief);

/* Whether every block d writes is there and its layer has not failed: a
 * copy by anyone but the owner needs both. */
bool tkv__batch_blocks_ready(struct tkv_runtime *rt, const tkv__desc *d);

/* Copies d's rows into its blocks (streamed copies need tkv__stream_fence
 * before they are published). A missing block makes the layer fail with
 * -ENOMEM and gives back the reservations d made: the owner's, in order. */
void tkv__batch_copy(struct tkv_runtime *rt, const tkv__desc *d);

/* Hands the blocks whose last row d wrote to the evictor and the prefix
 * cache: at d's completion, in order, after the copy's fence. */
void tkv__batch_hand_on(struct tkv_runtime *rt, const tkv__desc *d);

#endif
