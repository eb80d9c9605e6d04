/*
 * policy_impl.h - internals shared by the eviction policies (policy_*.c):
 * the common head of every policy object, the node's queue ids, and an
 * intrusive FIFO list. Not for the runtime: it sees only policy.h.
 *
 * Everything here except the node's atomic fields is guarded by the owning
 * policy's mutex.
 */
#ifndef TKV_TIERS_POLICY_IMPL_H
#define TKV_TIERS_POLICY_IMPL_H

#include <stddef.h>

#include "tiers/policy.h"

/* Every policy object starts with this, so destroy() of the wrong policy can
 * at least be caught in a debugger; the ops pointer is its type tag. */
struct tkv__policy {
	const tkv__policy_ops *ops;
};

/* tkv__policy_node.where */
enum {
	TKV__PQ_NONE = 0,  /* in no policy (tkv__policy_node_init) */
	TKV__PQ_LRU = 1,   /* in an LRU heap, at heap[slot] */
	TKV__PQ_SMALL = 2, /* in S3-FIFO's small queue */
	TKV__PQ_MAIN = 3,  /* in S3-FIFO's main queue */
};

/* A FIFO of nodes: head is the newest, tail the oldest. node->next points
 * toward the tail (older), node->prev toward the head (newer), so an
 * eviction walk goes tail -> prev -> ... -> head. */
typedef struct tkv__plist {
	tkv__policy_node *head, *tail;
	size_t len;
} tkv__plist;

void tkv__plist_push_head(tkv__plist *l, tkv__policy_node *n);
void tkv__plist_push_tail(tkv__plist *l, tkv__policy_node *n);
void tkv__plist_unlink(tkv__plist *l, tkv__policy_node *n);

#endif
