/*
 * shared_slot.c - the cluster slot of a key: CRC16-XMODEM (polynomial
 * 0x1021, initial value 0, no reflection) mod 16384, of the part inside the
 * first "{...}" when that holds at least one byte, else of the whole key.
 *
 * Bitwise rather than a 512-byte table: block keys are a few dozen bytes
 * and one batch hashes each key once, so the table would buy nothing
 * measurable and cost a first-use initialization.
 */
#include <string.h>

#include "tiers/shared_impl.h"

static uint16_t crc16_xmodem(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

uint16_t tkv__shared_key_slot(const void *key, size_t len)
{
	const unsigned char *k = key;
	const unsigned char *open = len ? memchr(k, '{', len) : NULL;
	if (open) {
		size_t from = (size_t)(open - k) + 1;
		const unsigned char *close = memchr(k + from, '}', len - from);
		/* "{}" hashes the whole key, as the server does. */
		if (close && close > k + from)
			return crc16_xmodem(k + from, (size_t)(close - (k + from))) & (TKV__SHARED_SLOTS - 1);
	}
	return crc16_xmodem(k, len) & (TKV__SHARED_SLOTS - 1);
}
