/*
 * shared_slot.c - the cluster slot of a key: CRC16-XMODEM (polynomial
 * 0x1021, initial value 0, no reflection) mod 16384, of the part inside the
 * first "{...}" when that holds at least one byte, else of the whole key.
 *
 * Four bits at a time from a 16-entry table (the CRC of each nibble value
 * shifted to the top): bit by bit, a 70-byte block key took 5.5% of a
 * 20 KiB put/get run's samples under perf (bench shared), since every op of
 * every batch is routed by its slot; a nibble table cuts the loop 4x and
 * fits in a cache line.
 */
#include <string.h>

#include "tiers/shared_impl.h"

static const uint16_t nibble[16] = {
	0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
	0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
};

static uint16_t crc16_xmodem(const unsigned char *p, size_t n)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc = (uint16_t)((crc << 4) ^ nibble[(crc >> 12) ^ (p[i] >> 4)]);
		crc = (uint16_t)((crc << 4) ^ nibble[(crc >> 12) ^ (p[i] & 0x0f)]);
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
