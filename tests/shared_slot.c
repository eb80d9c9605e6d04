/*
 * shared_slot.c - the key -> cluster slot function (tiers/shared_slot.c):
 * CRC16-XMODEM's check value, and the slots Redis 7.0.15's CLUSTER KEYSLOT
 * gave for these keys (asked once of a live server; tests/shared_client.c
 * asks a live server again for many random keys).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tiers/shared_client.h"

static uint16_t slot(const char *k)
{
	return tkv__shared_key_slot(k, strlen(k));
}

Test(shared_slot, crc16_xmodem_check_value)
{
	/* 0x31C3 is the CRC-16/XMODEM of "123456789"; below 16384, so the
	 * slot is the CRC itself. */
	cr_assert_eq(slot("123456789"), 0x31C3);
}

Test(shared_slot, slots_redis_reports)
{
	static const struct {
		const char *key;
		uint16_t slot;
	} v[] = {
		{"foo", 12182},
		{"bar", 5061},
		{"", 0},
		{"user1000", 3443},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"{}foo", 9500},         /* empty tag: the whole key */
		{"foo{}{bar}", 8363},    /* first tag empty: the whole key */
		{"foo{{bar}}zap", 4015}, /* tag is "{bar" */
		{"{bar", 4015},
		{"foo{bar}{zap}", 5061}, /* first tag only: "bar" */
		{"a{b}c", 3300},
		{"{{}}", 4092},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		cr_expect_eq(slot(v[i].key), v[i].slot, "slot(\"%s\") = %u, Redis says %u", v[i].key,
			     slot(v[i].key), v[i].slot);
}

Test(shared_slot, tag_inside_binary_key)
{
	/* Key bytes are bytes: a NUL before the tag does not end the key. */
	static const char k[] = {'x', '\0', '{', 'u', 's', 'e', 'r', '1', '0', '0', '0', '}', 'y'};
	cr_assert_eq(tkv__shared_key_slot(k, sizeof(k)), 3443);
	cr_assert_neq(tkv__shared_key_slot(k, 1), 3443);
}

/* The definition, a bit at a time, to check the table-driven CRC against. */
static uint16_t crc16_bitwise(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
	}
	return crc;
}

Test(shared_slot, table_matches_bitwise_definition)
{
	/* every byte value alone (every table entry), then keys of every
	 * length up to 100 from a fixed pseudo-random stream, none with '{' */
	unsigned char k[100];
	for (unsigned b = 0; b < 256; b++) {
		k[0] = (unsigned char)b;
		/* a lone '{' opens no tag: the whole key is hashed */
		cr_assert_eq(tkv__shared_key_slot(k, 1), crc16_bitwise(k, 1) & 16383, "byte %u", b);
	}
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t len = 0; len <= sizeof(k); len++) {
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			k[i] = (unsigned char)(x >> 32) == '{' ? 'z' : (unsigned char)(x >> 32);
		}
		cr_assert_eq(tkv__shared_key_slot(k, len), crc16_bitwise(k, len) & 16383, "len %zu",
			     len);
	}
}
