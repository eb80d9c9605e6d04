/*
 * trace_format.h - constants and little-endian field helpers of the trace
 * file format (tools/trace/FORMAT.md), shared by the writer (trace.c) and
 * the reader (tools/trace/trace_read.c) so the two cannot drift apart.
 */
#ifndef TKV_BASE_TRACE_FORMAT_H
#define TKV_BASE_TRACE_FORMAT_H

#include <stdint.h>

#define TKV__TF_MAGIC "TKVTRACE"
#define TKV__TF_MAGIC_LEN 8
#define TKV__TF_MAJOR 1
#define TKV__TF_MINOR 0
#define TKV__TF_HEADER_SIZE 40
#define TKV__TF_EVENT_SIZE 32
#define TKV__TF_CLOCK_MONOTONIC 1
#define TKV__TF_SECTION_HDR 8

enum tkv__tf_section {
	TKV__TF_KINDS = 1,
	TKV__TF_THREAD = 2,
	TKV__TF_EVENTS = 3,
	TKV__TF_DROPPED = 4,
	TKV__TF_END = 5,
};

#define TKV__TF_EVENTS_HDR 8 /* thread, reserved, count */
#define TKV__TF_DROPPED_LEN 16
#define TKV__TF_END_LEN 24

/* Byte-at-a-time so the code is endian-neutral and never does an unaligned
 * access (UBSan would flag one); compilers turn these into single moves. */
static inline void tkv__put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void tkv__put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void tkv__put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t tkv__get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t tkv__get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t tkv__get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
