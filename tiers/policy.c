/*
 * policy.c - the eviction policy registry (tkv__policy_find), node set-up,
 * and the intrusive FIFO list the policies share. Design: policy.h.
 */
#include "tiers/policy.h"

#include <string.h>

#include "tiers/policy_impl.h"

static const tkv__policy_ops *const policies[] = {
	&tkv__policy_lru,
	&tkv__policy_s3fifo,
};

const tkv__policy_ops *tkv__policy_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		if (strcmp(policies[i]->name, name) == 0)
			return policies[i];
	return NULL;
}

/* Plain stores: the node is not yet visible to any other thread (the runtime
 * publishes the unit afterwards, with its own release). */
void tkv__policy_node_init(tkv__policy_node *n, uint64_t key)
{
	memset(n, 0, sizeof(*n));
	n->key = key;
	n->where = TKV__PQ_NONE;
}

void tkv__plist_push_head(tkv__plist *l, tkv__policy_node *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head != NULL)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
	l->len++;
}

void tkv__plist_push_tail(tkv__plist *l, tkv__policy_node *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
	l->len++;
}

void tkv__plist_unlink(tkv__plist *l, tkv__policy_node *n)
{
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
	l->len--;
}
