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
