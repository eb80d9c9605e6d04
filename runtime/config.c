/*
 * config.c - defaults and validation of tkv_config.
 *
 * Validation names the first bad field and its value, and uses checked
 * multiplication for every derived size, so a geometry whose block size would
 * overflow size_t is rejected instead of wrapping to a small allocation.
 */
#include "runtime/config.h"

#include <stddef.h>
#include <string.h>

#include "base/error.h"
#include "base/struct_size.h"

/* The smallest tkv_config a caller may pass: the layout of the first release
 * (0.1, every field up to durability). Fields added later go after it and
 * keep their defaults when an older caller's struct_size does not reach them. */
#define TKV__CONFIG_MIN_SIZE (offsetof(tkv_config, durability) + sizeof(tkv_durability))

void tkv_config_default(tkv_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->struct_size = sizeof(*cfg);
	cfg->n_layers = 32;
	cfg->n_kv_heads = 8;
	cfg->head_dim = 128;
	cfg->dtype = TKV_DTYPE_F32;
	cfg->block_tokens = 16;
	cfg->hot_bytes = 512ull << 20;
	cfg->max_isa = TKV_ISA_AUTO;
	cfg->n_workers = 0;
	cfg->ring_slots = 4096;
	cfg->pin_workers = true;
	cfg->sysfs_root = NULL;
	cfg->trace_path = NULL;
	cfg->cold_dir = NULL;
	cfg->cold_bytes = 4ull << 30;
	cfg->hot_high_pct = 0; /* automatic: tkv_config_watermarks */
	cfg->hot_low_pct = 0;
	cfg->policy = TKV_POLICY_S3FIFO;
	cfg->durability = TKV_DURABLE_SYNC;
	cfg->hot_populate = TKV_HOT_POPULATE_AT_OPEN;
	cfg->wait_copy = TKV_WAIT_COPY_OWN;
}

size_t tkv_dtype_size(tkv_dtype dtype)
{
	switch (dtype) {
	case TKV_DTYPE_F32: return 4;
	case TKV_DTYPE_F16: return 2;
	case TKV_DTYPE_BF16: return 2;
	}
	return 0;
}

static int check_range(const char *field, uint64_t v, uint64_t lo, uint64_t hi)
{
	if (v < lo || v > hi)
		return tkv__fail(-EINVAL, "config.%s: must be in [%llu, %llu], got %llu",
				 field, (unsigned long long)lo, (unsigned long long)hi,
				 (unsigned long long)v);
	return 0;
}

static int derive_geometry(const tkv_config *c, tkv__geometry *g)
{
	size_t row, block;
	g->elem_bytes = tkv_dtype_size(c->dtype);
	g->kv_dim = (size_t)c->n_kv_heads * c->head_dim; /* both <= 2^12: no overflow */
	if (__builtin_mul_overflow(g->kv_dim, g->elem_bytes, &row) ||
	    __builtin_mul_overflow(row, (size_t)2 * c->block_tokens, &block))
		return tkv__fail(-EINVAL, "config: geometry block size overflows size_t");
	g->row_bytes = row;
	g->layer_token_bytes = 2 * row;
	g->block_bytes = block;
	g->hot_blocks = c->hot_bytes / block;
	if (g->hot_blocks < c->n_layers)
		return tkv__fail(-EINVAL,
				 "config.hot_bytes: %llu holds %llu blocks of %zu bytes; "
				 "needs at least one per layer (%u)",
				 (unsigned long long)c->hot_bytes,
				 (unsigned long long)g->hot_blocks, block, c->n_layers);
	return 0;
}

static int check_cold(const tkv_config *c)
{
	int rc;
	uint32_t hi, lo; /* one of them 0: the automatic value fills it in */
	tkv_config_watermarks(c, &hi, &lo);
	if ((c->hot_high_pct || c->hot_low_pct) &&
	    ((rc = check_range("hot_high_pct", hi, 2, 100)) ||
	     (rc = check_range("hot_low_pct", lo, 1, hi - 1))))
		return rc;
	if (c->policy != TKV_POLICY_S3FIFO && c->policy != TKV_POLICY_LRU)
		return tkv__fail(-EINVAL, "config.policy: unknown policy %d", (int)c->policy);
	if (c->durability != TKV_DURABLE_SYNC && c->durability != TKV_DURABLE_NONE)
		return tkv__fail(-EINVAL, "config.durability: unknown mode %d", (int)c->durability);
	if (c->hot_populate != TKV_HOT_POPULATE_AT_OPEN && c->hot_populate != TKV_HOT_POPULATE_ON_USE)
		return tkv__fail(-EINVAL, "config.hot_populate: unknown mode %d", (int)c->hot_populate);
	if (c->wait_copy != TKV_WAIT_COPY_OWN && c->wait_copy != TKV_WAIT_SLEEP &&
	    c->wait_copy != TKV_WAIT_COPY_ALL)
		return tkv__fail(-EINVAL, "config.wait_copy: unknown mode %d", (int)c->wait_copy);
	if (c->cold_dir && !c->cold_dir[0])
		return tkv__fail(-EINVAL, "config.cold_dir: empty path (use NULL for RAM only)");
	if (c->cold_dir && c->cold_bytes == 0)
		return tkv__fail(-EINVAL, "config.cold_bytes: 0 with a cold_dir");
	return 0;
}

static int check_shared(const tkv_config *c)
{
	int rc;
	if (!c->shared_enabled)
		return 0;
	if (!c->model_id)
		return tkv__fail(-EINVAL, "config.shared_enabled: the shared tier holds prefix-cache "
				 "blocks: set config.model_id");
	if (!c->shared_seeds || !c->shared_seeds[0])
		return tkv__fail(-EINVAL, "config.shared_seeds: the shared tier needs at least one "
				 "\"host:port\" address");
	if ((rc = check_range("shared_timeout_ms", c->shared_timeout_ms, 0, 60000)) ||
	    (rc = check_range("shared_connect_timeout_ms", c->shared_connect_timeout_ms, 0, 60000)))
		return rc;
	if (c->shared_write != TKV_SHARED_WRITE_ON_DROP && c->shared_write != TKV_SHARED_WRITE_THROUGH)
		return tkv__fail(-EINVAL, "config.shared_write: unknown policy %d", (int)c->shared_write);
	return 0;
}

static int validate(const tkv_config *c, tkv__geometry *g)
{
	int rc;
	if ((rc = check_range("n_layers", c->n_layers, 1, 1024)) ||
	    (rc = check_range("n_kv_heads", c->n_kv_heads, 1, 1024)) ||
	    (rc = check_range("head_dim", c->head_dim, 1, 4096)))
		return rc;
	if (tkv_dtype_size(c->dtype) == 0)
		return tkv__fail(-EINVAL, "config.dtype: unknown dtype %d", (int)c->dtype);
	if (c->block_tokens == 0 || c->block_tokens > 4096 ||
	    (c->block_tokens & (c->block_tokens - 1)))
		return tkv__fail(-EINVAL,
				 "config.block_tokens: must be a power of two in [1, 4096], got %u",
				 c->block_tokens);
	if (c->max_isa < TKV_ISA_AUTO || c->max_isa > TKV_ISA_NEON)
		return tkv__fail(-EINVAL, "config.max_isa: unknown level %d", (int)c->max_isa);
	if ((rc = check_range("n_workers", c->n_workers, 0, TKV_STATS_MAX_WORKERS)))
		return rc;
	if (c->ring_slots < 4 || c->ring_slots > (1u << 20) ||
	    (c->ring_slots & (c->ring_slots - 1)))
		return tkv__fail(-EINVAL,
				 "config.ring_slots: must be a power of two in [4, 1048576], got %u",
				 c->ring_slots);
	if (c->model_id && (!c->model_id[0] || strnlen(c->model_id, 1025) > 1024))
		return tkv__fail(-EINVAL, "config.model_id: must be NULL (no prefix cache) or a "
				 "non-empty string of at most 1024 bytes");
	if ((rc = check_shared(c)))
		return rc;
	return check_cold(c) ? -EINVAL : derive_geometry(c, g);
}

int tkv__config_load(const tkv_config *user, tkv_config *out, tkv__geometry *geo)
{
	tkv__geometry scratch;
	int rc = tkv__struct_check(user, TKV__CONFIG_MIN_SIZE, sizeof(*out), TKV__STRUCT_IN,
				   "tkv_config");
	if (rc)
		return rc;
	tkv_config_default(out);
	memcpy(out, user, user->struct_size < sizeof(*out) ? user->struct_size : sizeof(*out));
	out->struct_size = sizeof(*out);
	rc = validate(out, geo ? geo : &scratch);
	if (!rc) /* the evictor reads the resolved values */
		tkv_config_watermarks(out, &out->hot_high_pct, &out->hot_low_pct);
	return rc;
}

/*
 * Automatic watermarks. Without a prefix cache the hot tier holds live
 * sequences only, and 20-40% headroom lets bursts of stores proceed while
 * records are written (`tierkv-bench evict`). With one, RAM is cache
 * capacity: the headroom would hold nothing, and on the Mooncake replay a
 * hot+cold cache kept at 60-80% held 0.87-0.90 of its nominal size and lost
 * 1.4 pt of hit ratio to an exact LRU (bench/README.md, "Replay"). Full, the
 * evictor makes room as stores need it (tkv__evictor_wait_space).
 */
void tkv_config_watermarks(const tkv_config *c, uint32_t *high_pct, uint32_t *low_pct)
{
	const uint32_t auto_hi = c->model_id ? 100 : 80, auto_lo = c->model_id ? 99 : 60;
	uint32_t hi = c->hot_high_pct, lo = c->hot_low_pct;
	/* One set (code written for the old 80/60 defaults, e.g. only the low
	 * mark lowered): the other keeps its automatic value, moved just past
	 * the one set if they would cross. */
	if (!hi && !lo) {
		hi = auto_hi;
		lo = auto_lo;
	} else if (!hi) {
		hi = lo < auto_hi ? auto_hi : lo + 1;
	} else if (!lo) {
		lo = auto_lo < hi ? auto_lo : hi - 1;
	}
	*high_pct = hi;
	*low_pct = lo;
}

int tkv_config_validate(const tkv_config *cfg)
{
	tkv_config copy;
	return tkv__config_load(cfg, &copy, NULL);
}
