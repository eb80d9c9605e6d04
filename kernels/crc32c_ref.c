/*
 * crc32c_ref.c - the portable CRC32C (Castagnoli, reflected polynomial
 * 0x82F63B78): table-driven slicing-by-8, the scalar level's checksum and the
 * fallback on CPUs without CRC instructions. Also builds the lane-shift table
 * the hardware kernels use to merge their three interleaved streams.
 *
 * Convention (zlib's): the caller passes and gets the finished CRC; the
 * register inside is its complement, so crc32c(0, ...) starts from ~0 and
 * chained calls continue exactly where the previous one stopped.
 *
 * The tables are computed at run time by tkv__crc32c_init(), which dispatch.c
 * calls inside its pthread_once before handing out any table, so every reader
 * sees them complete (pthread_once orders the init before every return).
 */
#include <stdint.h>

#include "kernels/kernels_impl.h"

uint32_t tkv__crc32c_slice[8][256];
uint32_t tkv__crc32c_shift[4][256];
uint32_t tkv__crc32c_shift_small[4][256];

/* One byte through the register, bit by bit: the definition itself. */
static uint32_t byte_step(uint32_t reg)
{
	for (int k = 0; k < 8; k++)
		reg = (reg >> 1) ^ (TKV__CRC32C_POLY & (0u - (reg & 1)));
	return reg;
}

/*
 * tab[k][b]: the register b << 8k advanced over `lane` zero bytes.
 * Advancing is linear over GF(2), so it is fixed by the images of the 32
 * one-bit registers; a register is the XOR of the images of its set bits.
 * Needs slice[0].
 */
static void shift_table(int lane, uint32_t tab[4][256])
{
	uint32_t basis[32];
	for (int bit = 0; bit < 32; bit++) {
		uint32_t r = 1u << bit;
		for (int i = 0; i < lane; i++)
			r = (r >> 8) ^ tkv__crc32c_slice[0][r & 0xff];
		basis[bit] = r;
	}
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t img = 0;
			for (int bit = 0; bit < 8; bit++)
				if (b & (1u << bit))
					img ^= basis[8 * k + bit];
			tab[k][b] = img;
		}
}

void tkv__crc32c_init(void)
{
	for (uint32_t b = 0; b < 256; b++)
		tkv__crc32c_slice[0][b] = byte_step(b);
	/* slice[k][b]: byte b followed by k zero bytes. */
	for (int k = 1; k < 8; k++)
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t r = tkv__crc32c_slice[k - 1][b];
			tkv__crc32c_slice[k][b] = (r >> 8) ^ tkv__crc32c_slice[0][r & 0xff];
		}

	shift_table(TKV__CRC32C_LANE, tkv__crc32c_shift);
	shift_table(TKV__CRC32C_LANE_SMALL, tkv__crc32c_shift_small);
}

/* Bytes are assembled explicitly (no word loads), so this is correct on any
 * byte order and alignment; on little-endian targets gcc merges them into one
 * load. */
static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t tkv__crc32c_ref(uint32_t crc, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint32_t r = ~crc;
	const uint32_t(*t)[256] = (const uint32_t(*)[256])tkv__crc32c_slice;

	while (n >= 8) {
		uint32_t lo = r ^ le32(p), hi = le32(p + 4);
		r = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		    t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		    t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		r = (r >> 8) ^ t[0][(r ^ *p++) & 0xff];
	return ~r;
}
