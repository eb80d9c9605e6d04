/* config.c - tkv_config defaults and table-driven validation. */
#include <criterion/criterion.h>
#include <string.h>

#include "tierkv.h"

Test(config, defaults_are_valid)
{
	tkv_config c;
	tkv_config_default(&c);
	cr_assert_eq(c.struct_size, sizeof(c));
	cr_assert_eq(c.n_layers, 32);
	cr_assert_eq(c.block_tokens, 16);
	cr_assert_eq(c.hot_populate, TKV_HOT_POPULATE_AT_OPEN);
	cr_assert_eq(c.wait_copy, TKV_WAIT_COPY_OWN);
	cr_assert_eq(tkv_config_validate(&c), 0, "%s", tkv_last_error());
}

typedef struct bad_case {
	const char *field; /* must appear in the message */
	void (*mutate)(tkv_config *c);
} bad_case;

static void zero_layers(tkv_config *c) { c->n_layers = 0; }
static void many_layers(tkv_config *c) { c->n_layers = 5000; }
static void zero_heads(tkv_config *c) { c->n_kv_heads = 0; }
static void huge_head_dim(tkv_config *c) { c->head_dim = 1u << 20; }
static void bad_dtype(tkv_config *c) { c->dtype = (tkv_dtype)7; }
static void block_not_pow2(tkv_config *c) { c->block_tokens = 12; }
static void block_zero(tkv_config *c) { c->block_tokens = 0; }
static void hot_too_small(tkv_config *c) { c->hot_bytes = 4096; }
static void bad_isa(tkv_config *c) { c->max_isa = (tkv_isa)99; }
static void many_workers(tkv_config *c) { c->n_workers = 100000; }
static void ring_not_pow2(tkv_config *c) { c->ring_slots = 1000; }
static void ring_tiny(tkv_config *c) { c->ring_slots = 2; }
static void high_low_swapped(tkv_config *c) { c->hot_high_pct = 50; c->hot_low_pct = 60; }
static void high_over(tkv_config *c) { c->hot_high_pct = 101; c->hot_low_pct = 60; }
static void only_high_too_low(tkv_config *c) { c->hot_high_pct = 1; }
static void only_low_over(tkv_config *c) { c->hot_low_pct = 100; }
static void bad_policy(tkv_config *c) { c->policy = (tkv_policy)9; }
static void bad_durability(tkv_config *c) { c->durability = (tkv_durability)9; }
static void empty_cold_dir(tkv_config *c) { c->cold_dir = ""; }
static void zero_cold_bytes(tkv_config *c) { c->cold_dir = "/tmp/x"; c->cold_bytes = 0; }
static void size_zero(tkv_config *c) { c->struct_size = 0; }
static void bad_populate(tkv_config *c) { c->hot_populate = (tkv_hot_populate)7; }
static void bad_wait_copy(tkv_config *c) { c->wait_copy = (tkv_wait_copy)3; }

static const bad_case bad_cases[] = {
	{"n_layers", zero_layers},     {"n_layers", many_layers},
	{"n_kv_heads", zero_heads},    {"head_dim", huge_head_dim},
	{"dtype", bad_dtype},          {"block_tokens", block_not_pow2},
	{"block_tokens", block_zero},  {"hot_bytes", hot_too_small},
	{"max_isa", bad_isa},          {"n_workers", many_workers},
	{"ring_slots", ring_not_pow2}, {"ring_slots", ring_tiny},
	{"hot_low_pct", high_low_swapped}, {"hot_high_pct", high_over},
	{"hot_high_pct", only_high_too_low}, {"hot_high_pct", only_low_over},
	{"policy", bad_policy},            {"durability", bad_durability},
	{"cold_dir", empty_cold_dir},      {"cold_bytes", zero_cold_bytes},
	{"struct_size", size_zero},        {"hot_populate", bad_populate},
	{"wait_copy", bad_wait_copy},
	/* larger than this library's layout: tests/struct_size.c */
};

Test(config, each_bad_field_is_named)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		tkv_config c;
		tkv_config_default(&c);
		bad_cases[i].mutate(&c);
		cr_assert_eq(tkv_config_validate(&c), -EINVAL, "case %zu (%s)", i,
			     bad_cases[i].field);
		cr_assert(strstr(tkv_last_error(), bad_cases[i].field),
			  "case %zu: message '%s' does not name %s", i, tkv_last_error(),
			  bad_cases[i].field);
	}
}

/* Both 0 (the default) is automatic: headroom for stores without a prefix
 * cache, a full hot tier with one; set values are kept as they are. */
Test(config, watermarks_automatic_unless_set)
{
	tkv_config c;
	tkv_config_default(&c);
	cr_assert_eq(c.hot_high_pct, 0);
	cr_assert_eq(c.hot_low_pct, 0);
	uint32_t hi, lo;
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert_eq(hi, 80);
	cr_assert_eq(lo, 60);
	c.model_id = "m";
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert_eq(hi, 100);
	cr_assert_eq(lo, 99);
	c.hot_high_pct = 70;
	c.hot_low_pct = 20;
	cr_assert_eq(tkv_config_validate(&c), 0, "%s", tkv_last_error());
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert_eq(hi, 70);
	cr_assert_eq(lo, 20);
	/* one set: the other is automatic, kept from crossing it */
	c.model_id = NULL;
	c.hot_high_pct = 0;
	c.hot_low_pct = 25; /* what code written for the 80/60 defaults did */
	cr_assert_eq(tkv_config_validate(&c), 0, "%s", tkv_last_error());
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert(hi == 80 && lo == 25, "%u/%u", hi, lo);
	c.hot_low_pct = 90;
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert(hi == 91 && lo == 90, "%u/%u", hi, lo);
	c.hot_low_pct = 0;
	c.hot_high_pct = 50;
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert(hi == 50 && lo == 49, "%u/%u", hi, lo);
	c.model_id = "m";
	c.hot_high_pct = 0;
	c.hot_low_pct = 60;
	tkv_config_watermarks(&c, &hi, &lo);
	cr_assert(hi == 100 && lo == 60, "%u/%u", hi, lo);
}

Test(config, null_is_einval)
{
	cr_assert_eq(tkv_config_validate(NULL), -EINVAL);
}

Test(config, dtype_sizes)
{
	cr_assert_eq(tkv_dtype_size(TKV_DTYPE_F32), 4);
	cr_assert_eq(tkv_dtype_size(TKV_DTYPE_F16), 2);
	cr_assert_eq(tkv_dtype_size(TKV_DTYPE_BF16), 2);
	cr_assert_eq(tkv_dtype_size((tkv_dtype)42), 0);
}

Test(config, strerror_names_codes)
{
	cr_assert(strncmp(tkv_strerror(-EINVAL), "EINVAL", 6) == 0);
	cr_assert(strncmp(tkv_strerror(-TKV_ECORRUPT), "ECORRUPT", 8) == 0);
	cr_assert(strncmp(tkv_strerror(-ENOSPC), "ENOSPC", 6) == 0);
	cr_assert_str_eq(tkv_strerror(-123456), "unknown error");
	cr_assert_str_eq(tkv_version_string(), "0.1.0");
	cr_assert_eq(tkv_version(), TKV_VERSION_HEX);
}
