/*
 * cache.c - the prefix cache (cache.h).
 */
#include "tiers/cache.h"

#include <stdlib.h>

void tkv__cache_ent_free(tkv__unit *u)
{
	free(u->ce);
	u->ce = NULL;
}

void tkv__cache_unreferenced(struct tkv__cache *c, tkv__unit *u)
{
	(void)c;
	(void)u;
}

void tkv__cache_unit_full(struct tkv__cache *c, tkv__seq *s, tkv__unit *u, uint64_t b)
{
	(void)c;
	(void)s;
	(void)u;
	(void)b;
}
