/*
 * prefetch.c - tkv_prefetch: validates the request against what the
 * sequence stored and queues it for the cold tier's prefetch thread
 * (tiers/promote.c), which promotes the blocks layer by layer.
 */
#include <errno.h>

#include <ck_pr.h>

#include "base/error.h"
#include "runtime/runtime.h"

int tkv_prefetch(tkv_runtime *rt, uint64_t seq_id, uint64_t pos, uint32_t n_tokens)
{
	int rc = tkv__rt_check(rt);
	if (rc)
		return rc;
	if (n_tokens == 0)
		return tkv__fail(-EINVAL, "prefetch: n_tokens is 0");
	tkv__seq *s = tkv__seq_get(&rt->seqs, seq_id);
	if (!s)
		return tkv__fail(-ENOENT, "prefetch: sequence %llu is not open",
				 (unsigned long long)seq_id);
	uint64_t stored = ck_pr_load_64(&s->layers[0].next_pos);
	tkv__seq_put(s);
	if (pos >= stored || n_tokens > stored - pos)
		return tkv__fail(-EINVAL, "prefetch: tokens [%llu, +%u) not stored (%llu stored)",
				 (unsigned long long)pos, n_tokens, (unsigned long long)stored);
	if (!rt->ev)
		return 0; /* RAM only: everything stored is hot */
	const uint32_t bt = rt->cfg.block_tokens;
	uint64_t first = pos / bt, end = (pos + n_tokens + bt - 1) / bt;
	return tkv__prefetch_enqueue(rt->ev, seq_id, first, end - first);
}
