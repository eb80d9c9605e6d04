/*
 * struct_size.c - the one struct_size rule (tierkv.h, "Conventions") on each
 * struct that crosses the API: an older caller's shorter struct works and
 * gets only its own fields; a struct shorter than the first released layout
 * is -EINVAL; a newer caller's longer one is accepted, its unknown bytes
 * zero-checked (tkv_config, read only), zeroed (tkv_stats, filled only) or
 * left alone (tkv_view, read and filled).
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tierkv.h"

/* The first released layouts, as the 0.1 header had them. */
#define CONFIG_V1_SIZE (offsetof(tkv_config, durability) + sizeof(tkv_durability))
#define STATS_V1_SIZE offsetof(tkv_stats, env_warning)
#define VIEW_V1_SIZE sizeof(tkv_view)

enum { TAIL = 64, SENTINEL = 0xa5 };

static tkv_config small_config(void)
{
	tkv_config c;
	tkv_config_default(&c);
	c.n_layers = 2;
	c.n_kv_heads = 1;
	c.head_dim = 16;
	c.hot_bytes = 8ull << 20;
	c.n_workers = 1;
	return c;
}

static tkv_runtime *open_small(void)
{
	tkv_config c = small_config();
	tkv_runtime *rt;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	return rt;
}

/* An older caller's struct: its first `written` bytes from small_config,
 * struct_size `size`, and garbage it never wrote after them, which must
 * not be read: it validates and opens. */
static void expect_older_layout_opens(size_t written, size_t size)
{
	unsigned char *buf = malloc(sizeof(tkv_config));
	memset(buf, SENTINEL, sizeof(tkv_config));
	tkv_config c = small_config();
	memcpy(buf, &c, written);
	((tkv_config *)buf)->struct_size = size;
	cr_assert_eq(tkv_config_validate((tkv_config *)buf), 0, "%s", tkv_last_error());
	tkv_runtime *rt;
	cr_assert_eq(tkv_open((tkv_config *)buf, &rt), 0, "%s", tkv_last_error());
	tkv_close(rt);
	free(buf);
}

Test(struct_size, config_older_layout_gets_defaults)
{
	expect_older_layout_opens(CONFIG_V1_SIZE, CONFIG_V1_SIZE);
}

/* A layout that ended at a 4-byte field had 4 bytes of tail padding, now
 * the field `reserved` (offset given); a caller built against it may leave
 * anything there, and the next field (at `next`) must start past it so
 * that caller gets that field's default: the padding's garbage, read as
 * the field, fails validation. */
static void expect_padding_skipped(size_t last_end, size_t reserved, size_t next)
{
	cr_assert_eq(reserved, last_end, "the reserved field fills the old padding");
	cr_assert_eq(next % sizeof(size_t), 0, "the new field starts inside the old padding");
	expect_older_layout_opens(reserved, next);
}

Test(struct_size, config_layout_before_hot_populate_gets_its_default)
{
	expect_padding_skipped(offsetof(tkv_config, shared_write) + sizeof(tkv_shared_write),
			       offsetof(tkv_config, reserved0), offsetof(tkv_config, hot_populate));
}

Test(struct_size, config_layout_before_wait_copy_gets_its_default)
{
	expect_padding_skipped(offsetof(tkv_config, hot_populate) + sizeof(tkv_hot_populate),
			       offsetof(tkv_config, reserved1), offsetof(tkv_config, wait_copy));
}

Test(struct_size, config_shorter_than_first_layout_is_einval)
{
	tkv_config c = small_config();
	c.struct_size = CONFIG_V1_SIZE - 1;
	cr_assert_eq(tkv_config_validate(&c), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "struct_size"), "%s", tkv_last_error());
}

Test(struct_size, config_newer_layout_zero_tail_accepted_set_tail_e2big)
{
	unsigned char *buf = calloc(1, sizeof(tkv_config) + TAIL);
	tkv_config c = small_config();
	memcpy(buf, &c, sizeof(c));
	((tkv_config *)buf)->struct_size = sizeof(tkv_config) + TAIL;
	cr_assert_eq(tkv_config_validate((tkv_config *)buf), 0, "%s", tkv_last_error());
	buf[sizeof(tkv_config) + TAIL - 1] = 1; /* a setting this library lacks */
	cr_assert_eq(tkv_config_validate((tkv_config *)buf), -E2BIG);
	cr_assert(strstr(tkv_last_error(), "newer"), "%s", tkv_last_error());
	tkv_runtime *rt = (tkv_runtime *)buf; /* must stay untouched */
	cr_assert_eq(tkv_open((tkv_config *)buf, &rt), -E2BIG);
	cr_assert_null(rt);
	free(buf);
}

Test(struct_size, stats_older_layout_gets_only_its_fields)
{
	tkv_runtime *rt = open_small();
	unsigned char *buf = malloc(sizeof(tkv_stats));
	memset(buf, SENTINEL, sizeof(tkv_stats));
	((tkv_stats *)buf)->struct_size = STATS_V1_SIZE;
	cr_assert_eq(tkv_stats_get(rt, (tkv_stats *)buf), 0, "%s", tkv_last_error());
	const tkv_stats *st = (const tkv_stats *)buf;
	cr_assert_eq(st->struct_size, STATS_V1_SIZE, "the caller's size is kept");
	cr_assert_eq(st->n_workers, 1);
	cr_assert_eq(st->hot_bytes_capacity % 64, 0);
	for (size_t i = STATS_V1_SIZE; i < sizeof(tkv_stats); i++)
		cr_assert_eq(buf[i], SENTINEL, "byte %zu past the caller's layout was written", i);
	free(buf);
	tkv_close(rt);
}

Test(struct_size, stats_shorter_than_first_layout_is_einval)
{
	tkv_runtime *rt = open_small();
	tkv_stats st = {.struct_size = STATS_V1_SIZE - 8};
	cr_assert_eq(tkv_stats_get(rt, &st), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "struct_size"), "%s", tkv_last_error());
	tkv_close(rt);
}

Test(struct_size, stats_newer_layout_tail_zeroed)
{
	tkv_runtime *rt = open_small();
	unsigned char *buf = malloc(sizeof(tkv_stats) + TAIL);
	memset(buf, SENTINEL, sizeof(tkv_stats) + TAIL);
	((tkv_stats *)buf)->struct_size = sizeof(tkv_stats) + TAIL;
	cr_assert_eq(tkv_stats_get(rt, (tkv_stats *)buf), 0, "%s", tkv_last_error());
	cr_assert_eq(((tkv_stats *)buf)->n_workers, 1);
	cr_assert_eq(((tkv_stats *)buf)->units_unevictable, 0);
	for (size_t i = sizeof(tkv_stats); i < sizeof(tkv_stats) + TAIL; i++)
		cr_assert_eq(buf[i], 0, "unknown output byte %zu not zeroed", i);
	free(buf);
	tkv_close(rt);
}

/* Stores one block so a view has something to pin. */
static void store_block(tkv_runtime *rt)
{
	unsigned char k[16 * 16 * sizeof(float)], v[sizeof(k)];
	memset(k, 1, sizeof(k));
	memset(v, 2, sizeof(v));
	cr_assert_eq(tkv_seq_open(rt, 7), 0);
	tkv_ticket t;
	cr_assert_eq(tkv_store(rt, 7, 0, 0, 16, k, v, 0, &t), 0, "%s", tkv_last_error());
	cr_assert_eq(tkv_wait(rt, &t), 0);
}

Test(struct_size, view_shorter_than_first_layout_is_einval)
{
	tkv_runtime *rt = open_small();
	store_block(rt);
	tkv_view_block b[1];
	tkv_view vw = {.struct_size = VIEW_V1_SIZE - 1, .blocks = b, .max_blocks = 1};
	cr_assert_eq(tkv_view_acquire(rt, 7, 0, 0, 16, &vw), -EINVAL);
	cr_assert(strstr(tkv_last_error(), "struct_size"), "%s", tkv_last_error());
	tkv_close(rt);
}

Test(struct_size, view_newer_layout_works_tail_untouched)
{
	tkv_runtime *rt = open_small();
	store_block(rt);
	tkv_view_block b[1];
	unsigned char *buf = malloc(sizeof(tkv_view) + TAIL);
	memset(buf, SENTINEL, sizeof(tkv_view) + TAIL);
	tkv_view *vw = (tkv_view *)buf;
	*vw = (tkv_view){.struct_size = sizeof(tkv_view) + TAIL, .blocks = b, .max_blocks = 1};
	cr_assert_eq(tkv_view_acquire(rt, 7, 0, 0, 16, vw), 0, "%s", tkv_last_error());
	cr_assert_eq(vw->n_blocks, 1);
	cr_assert_eq(((const unsigned char *)b[0].k)[0], 1);
	cr_assert_eq(((const unsigned char *)b[0].v)[0], 2);
	for (size_t i = sizeof(tkv_view); i < sizeof(tkv_view) + TAIL; i++)
		cr_assert_eq(buf[i], SENTINEL, "byte %zu of the view's unknown tail changed", i);
	cr_assert_eq(tkv_view_release(rt, vw), 0);
	free(buf);
	tkv_close(rt);
}

/* tkv_cache_match (filled only): shared_blocks came after the first layout.
 * An older caller's struct is filled up to its size, the rest untouched. */
#define MATCH_V1_SIZE offsetof(tkv_cache_match, shared_blocks)

Test(struct_size, cache_match_older_layout_gets_only_its_fields)
{
	tkv_config c = small_config();
	c.model_id = "struct-size";
	tkv_runtime *rt = NULL;
	cr_assert_eq(tkv_open(&c, &rt), 0, "%s", tkv_last_error());
	uint32_t tokens[64] = {0};
	unsigned char *buf = malloc(sizeof(tkv_cache_match) + TAIL);
	memset(buf, SENTINEL, sizeof(tkv_cache_match) + TAIL);
	((tkv_cache_match *)buf)->struct_size = MATCH_V1_SIZE;
	cr_assert_eq(tkv_cache_lookup(rt, tokens, 64, NULL, (tkv_cache_match *)buf), 0, "%s",
		     tkv_last_error());
	cr_assert_eq(((tkv_cache_match *)buf)->tokens, 0);
	cr_assert_eq(((tkv_cache_match *)buf)->hot_blocks, 0);
	for (size_t i = MATCH_V1_SIZE; i < sizeof(tkv_cache_match) + TAIL; i++)
		cr_assert_eq(buf[i], SENTINEL, "byte %zu past the caller's struct written", i);
	((tkv_cache_match *)buf)->struct_size = MATCH_V1_SIZE - 1;
	cr_assert_eq(tkv_cache_lookup(rt, tokens, 64, NULL, (tkv_cache_match *)buf), -EINVAL);
	free(buf);
	tkv_close(rt);
}
